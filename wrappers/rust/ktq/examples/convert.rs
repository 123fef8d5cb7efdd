//! cargo run --example convert -- MODEL_DIR OUT_DIR
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} MODEL_DIR OUT_DIR", args[0]);
        std::process::exit(2);
    }
    let model = ktq::Model::open(&args[1])?;
    let info = model.info()?;
    println!("libktq {}: {} ({}), {} layers, {} experts, source {}", ktq::version(), info.architecture, info.family,
             info.num_layers, info.num_experts, info.source_dtype);
    let mut writer = ktq::Writer::open(&model, &args[2], ktq::Format::HfBf16, &ktq::WriterOptions::default())?;
    writer.write_all(&ktq::ConvertOptions::default(), |p| {
        eprint!("\r{:5.1}%", 100.0 * p.bytes_done as f64 / p.bytes_total.max(1) as f64);
        std::io::stderr().flush().ok();
        true
    })?;
    eprintln!("\nwrote {}", args[2]);
    Ok(())
}
