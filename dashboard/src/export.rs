//! `/api/export`: the rows a table shows (the windows, or each key's
//! buckets), as CSV or Parquet for analysts' own tools. Reach comes as the
//! estimate and as the sketch in DataSketches' serialization (base64 in
//! CSV), so that unions over exported rows stay exact in their bound.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::view::WindowView;

/// The formats an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn parse(name: Option<&str>) -> Result<Format, String> {
        match name {
            None | Some("csv") => Ok(Format::Csv),
            Some("parquet") => Ok(Format::Parquet),
            Some(other) => Err(format!("`format` is csv or parquet, not `{other}`")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// A column: its name, and its value in a row.
type Column<T> = (&'static str, fn(&WindowView) -> T);

/// A text column: its name, and its value in a row.
type Text = (&'static str, for<'a> fn(&'a WindowView) -> Option<&'a str>);

/// A row's text columns.
const TEXT: [Text; 4] = [
    ("window", |r| Some(&r.window)),
    ("campaign", |r| Some(&r.campaign)),
    ("channel", |r| Some(&r.channel)),
    ("campaign_name", |r| r.campaign_name.as_deref()),
];

/// A row's integer columns.
const INTEGERS: [Column<i64>; 10] = [
    ("window_start_ms", |r| r.window_start),
    ("window_end_ms", |r| r.window_end),
    ("impressions", |r| r.totals.impressions as i64),
    ("clicks", |r| r.totals.clicks as i64),
    ("conversions", |r| r.totals.conversions as i64),
    ("spend_micros", |r| r.totals.spend_micros),
    ("revenue_micros", |r| r.totals.revenue_micros),
    ("reach", |r| r.totals.reach as i64),
    ("late_records", |r| r.totals.late_records as i64),
    ("panes", |r| r.panes as i64),
];

/// A row's ratio columns: floats, at the edge, as the API gives them.
const RATIOS: [Column<f64>; 10] = [
    ("spend", |r| r.totals.spend),
    ("revenue", |r| r.totals.revenue),
    ("CPC", |r| r.totals.cpc),
    ("CPA", |r| r.totals.cpa),
    ("CTR", |r| r.totals.ctr),
    ("CVR", |r| r.totals.cvr),
    ("CPM", |r| r.totals.cpm),
    ("ROAS", |r| r.totals.roas),
    ("AOV", |r| r.totals.aov),
    ("frequency", |r| r.totals.frequency),
];

/// The rows, each with its sketch, in `format`.
pub fn write(format: Format, rows: &[(WindowView, Option<Vec<u8>>)]) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Csv => csv(rows),
        Format::Parquet => parquet(rows),
    }
}

fn csv(rows: &[(WindowView, Option<Vec<u8>>)]) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = TEXT.iter().map(|c| c.0).collect();
    header.extend(INTEGERS.iter().map(|c| c.0));
    header.extend(RATIOS.iter().map(|c| c.0));
    header.extend(["final", "reach_sketch"]);
    out.write_record(&header)?;
    for (row, sketch) in rows {
        let mut fields: Vec<String> = TEXT
            .iter()
            .map(|c| c.1(row).unwrap_or_default().to_string())
            .collect();
        fields.extend(INTEGERS.iter().map(|c| c.1(row).to_string()));
        fields.extend(RATIOS.iter().map(|c| c.1(row).to_string()));
        fields.push(row.is_final.to_string());
        fields.push(
            sketch
                .as_deref()
                .map(|s| STANDARD.encode(s))
                .unwrap_or_default(),
        );
        out.write_record(&fields)?;
    }
    Ok(out.into_inner()?)
}

fn parquet(rows: &[(WindowView, Option<Vec<u8>>)]) -> anyhow::Result<Vec<u8>> {
    let mut schema = String::from("message window {\n");
    for (name, _) in TEXT {
        let repetition = if name == "campaign_name" {
            "OPTIONAL"
        } else {
            "REQUIRED"
        };
        schema.push_str(&format!("{repetition} BYTE_ARRAY {name} (UTF8);\n"));
    }
    for (name, _) in INTEGERS {
        let logical = if name.ends_with("_ms") {
            " (TIMESTAMP(MILLIS,true))"
        } else {
            ""
        };
        schema.push_str(&format!("REQUIRED INT64 {name}{logical};\n"));
    }
    for (name, _) in RATIOS {
        schema.push_str(&format!("REQUIRED DOUBLE {name};\n"));
    }
    schema.push_str("REQUIRED BOOLEAN final;\nOPTIONAL BYTE_ARRAY reach_sketch;\n}");
    let schema = Arc::new(parse_message_type(&schema)?);
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::default()))?;
    let mut group = writer.next_row_group()?;
    // Optional columns: definition level 1 where there is a value.
    let optional = |values: Vec<Option<&[u8]>>| {
        let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        let present: Vec<ByteArray> = values.into_iter().flatten().map(ByteArray::from).collect();
        (present, levels)
    };
    for (name, text) in TEXT {
        let mut column = group.next_column()?.expect("a column per field");
        let values: Vec<Option<&[u8]>> = rows
            .iter()
            .map(|(r, _)| text(r).map(str::as_bytes))
            .collect();
        let (present, levels) = optional(values);
        let levels = (name == "campaign_name").then_some(&levels[..]);
        column
            .typed::<ByteArrayType>()
            .write_batch(&present, levels, None)?;
        column.close()?;
    }
    for (_, integer) in INTEGERS {
        let mut column = group.next_column()?.expect("a column per field");
        let values: Vec<i64> = rows.iter().map(|(r, _)| integer(r)).collect();
        column
            .typed::<Int64Type>()
            .write_batch(&values, None, None)?;
        column.close()?;
    }
    for (_, ratio) in RATIOS {
        let mut column = group.next_column()?.expect("a column per field");
        let values: Vec<f64> = rows.iter().map(|(r, _)| ratio(r)).collect();
        column
            .typed::<DoubleType>()
            .write_batch(&values, None, None)?;
        column.close()?;
    }
    let mut column = group.next_column()?.expect("a column per field");
    let finals: Vec<bool> = rows.iter().map(|(r, _)| r.is_final).collect();
    column
        .typed::<BoolType>()
        .write_batch(&finals, None, None)?;
    column.close()?;
    let mut column = group.next_column()?.expect("a column per field");
    let (present, levels) = optional(rows.iter().map(|(_, s)| s.as_deref()).collect());
    column
        .typed::<ByteArrayType>()
        .write_batch(&present, Some(&levels), None)?;
    column.close()?;
    group.close()?;
    writer.close()?;
    Ok(out)
}
