//! `testdata/setup-panic/transform.go`: panics in `main`, and never links
//! the SDK, so it lacks the transform ABI's import too.

fn main() {
    panic!("Oh noes!");
}
