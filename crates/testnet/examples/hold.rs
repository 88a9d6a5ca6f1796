//! Builds a topology and keeps it until stdin is closed / Enter is pressed,
//! for poking at it by hand: `cargo run -p edgetrace-testnet --example hold -- diamond`
//! (or `linear [ROUTERS]`). Prints the namespace names.

use edgetrace_testnet::{DiamondSpec, LinearSpec, ecmp_diamond, linear};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let held: Box<dyn std::fmt::Debug> = match args.first().map(String::as_str) {
        Some("diamond") => Box::new(ecmp_diamond(&DiamondSpec::default())?),
        _ => {
            let routers = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
            Box::new(linear(&LinearSpec {
                routers,
                ..Default::default()
            })?)
        }
    };
    println!("{held:#?}");
    println!("press Enter to tear down");
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(())
}
