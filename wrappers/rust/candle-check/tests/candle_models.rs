//! Candle's own quantized model code runs ktq's GGUF files: the files are
//! written by ktq (through the safe crate, as a Rust pipeline would), loaded
//! by candle-transformers' loaders, and scored on the shared eval text with
//! llama-perplexity's protocol (256-token windows, the second half of each
//! scored). The perplexity must match llama.cpp's on the same file within
//! 1 % (tests/golden/candle_ppl.json, measured by llama-perplexity itself:
//! tests/golden/make_candle_ppl_golden.sh).
//!
//! - tiny-llama, dense, Q8_0 and Q4_K_M: `quantized_llama`;
//! - tiny-mixtral with the experts split per expert (`--target candle`), as
//!   `quantized_llama`'s MoE path reads them;
//! - tiny-qwen3-moe with the experts stacked, as `quantized_qwen3_moe` reads them: loaded only,
//!   since its MoE product (`moe_gemm_gguf`) runs on CUDA only in candle 0.9.2.
use std::io::Cursor;
use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen3_moe};

const WINDOW: usize = 256;

fn shared(rel: &str) -> Option<PathBuf> {
    let root = std::env::var("KTQ_SHARED_DIR").map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared"));
    let p = root.join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

/// The perplexities llama.cpp measured, by case, and the number of windows scored.
fn golden() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/golden/candle_ppl.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("tests/golden/candle_ppl.json")).unwrap()
}

enum Arch {
    Llama,
    Qwen3Moe,
}

/// ktq writes the GGUF file of `model` (a shared model name) into memory.
fn ktq_gguf(model: &PathBuf, mix: &str, split_experts: bool) -> Vec<u8> {
    let m = ktq::Model::open(model).unwrap();
    let dir = std::env::temp_dir().join(format!("ktq-candle-{}-{mix}-{split_experts}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m.gguf");
    let fmt = ktq::Format::Gguf { ty: ktq::GgmlType::Q8_0, split_experts };
    ktq::Writer::open(&m, &out, fmt, &ktq::WriterOptions::default().gguf_mix(mix)).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

trait Forward {
    /// Logits of the last position of `tokens`, which start at position `pos` of the window.
    fn logits(&mut self, tokens: &[u32], pos: usize) -> Vec<f32>;
}

struct Llama(quantized_llama::ModelWeights);
struct Qwen3Moe(quantized_qwen3_moe::GGUFQWenMoE);

impl Forward for Llama {
    fn logits(&mut self, tokens: &[u32], pos: usize) -> Vec<f32> {
        let x = Tensor::new(tokens, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        self.0.forward(&x, pos).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

impl Forward for Qwen3Moe {
    fn logits(&mut self, tokens: &[u32], pos: usize) -> Vec<f32> {
        let x = Tensor::new(tokens, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        self.0.forward(&x, pos).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

fn load(arch: &Arch, bytes: &[u8]) -> Box<dyn Forward> {
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader).expect("candle reads ktq's GGUF header");
    match arch {
        Arch::Llama => Box::new(Llama(quantized_llama::ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)
            .expect("quantized_llama loads ktq's GGUF"))),
        Arch::Qwen3Moe => Box::new(Qwen3Moe(quantized_qwen3_moe::GGUFQWenMoE::from_gguf(
            content, &mut reader, &Device::Cpu, candle_core::DType::F32)
            .expect("quantized_qwen3_moe loads ktq's GGUF"))),
    }
}

fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| ((l as f64) - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// llama-perplexity's protocol over the first `chunks` windows: within each window of 256 tokens the
/// logits at positions 128..254 predict the next token. The model runs the first 129 tokens at once
/// (its loaders return the last position's logits only), then one token at a time on its KV cache; a
/// fresh model per window, so no cache is carried over.
fn perplexity(arch: &Arch, bytes: &[u8], tokens: &[i32], chunks: usize) -> f64 {
    let first = WINDOW / 2;
    let (mut sum, mut count) = (0.0f64, 0usize);
    for c in 0..chunks {
        let w: Vec<u32> = tokens[c * WINDOW..(c + 1) * WINDOW].iter().map(|&t| t as u32).collect();
        let mut model = load(arch, bytes);
        let mut logits = model.logits(&w[..=first], 0);
        for pos in first..WINDOW - 1 {
            if pos > first {
                logits = model.logits(&w[pos..=pos], pos);
            }
            sum += nll(&logits, w[pos + 1]);
            count += 1;
        }
    }
    (sum / count as f64).exp()
}

fn check(case: &str, model_name: &str, arch: Arch, mix: &str, split_experts: bool) {
    let Some(model) = shared(&format!("models/{model_name}")) else { return };
    let Some(eval) = shared("data/eval.txt") else { return };
    let g = golden();
    let chunks = g["chunks"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(eval).unwrap();
    let tokens = ktq::Tokenizer::open(&model).unwrap().encode(&text).unwrap();
    let bytes = ktq_gguf(&model, mix, split_experts);
    let ppl = perplexity(&arch, &bytes, &tokens, chunks);
    let want = g["llama_cpp_ppl"][case].as_f64().unwrap_or_else(|| panic!("golden has no {case}"));
    let rel = (ppl - want).abs() / want;
    eprintln!("{case}: candle {ppl:.4}, llama.cpp {want:.4} ({:+.3} %)", 100.0 * (ppl - want) / want);
    assert!(rel < 0.01, "{case}: Candle's perplexity {ppl} is not within 1 % of llama.cpp's {want}");
}

#[test]
fn tiny_llama_q8_0() {
    check("tiny-llama/Q8_0", "tiny-llama", Arch::Llama, "Q8_0", false);
}

#[test]
fn tiny_llama_q4_k_m() {
    check("tiny-llama/Q4_K_M", "tiny-llama", Arch::Llama, "Q4_K_M", false);
}

#[test]
fn tiny_mixtral_split_experts_q4_k_m() {
    check("tiny-mixtral/Q4_K_M", "tiny-mixtral", Arch::Llama, "Q4_K_M", true);
}

#[test]
fn tiny_qwen3_moe_stacked_experts_load() {
    // Every tensor name, shape and type and every hyperparameter quantized_qwen3_moe reads must be there.
    let Some(model) = shared("models/tiny-qwen3-moe") else { return };
    let bytes = ktq_gguf(&model, "Q4_K_M", false);
    let _ = load(&Arch::Qwen3Moe, &bytes);
}

#[test]
fn files_with_every_ktq_key_load() {
    // Readers that do not know ktq's provenance and placement keys must still load the file: Candle's
    // GGUF reader parses every key-value (string arrays, i32 arrays) and its model loader runs.
    let Some(model) = shared("models/tiny-mixtral") else { return };
    let m = ktq::Model::open(&model).unwrap();
    let dir = std::env::temp_dir().join(format!("ktq-candle-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let routing = dir.join("routing_stats.json");
    let layers: Vec<String> = (0..2).map(|l| format!("\"{l}\": [1, 2, 3, 4, 5, 6, 7, 8]")).collect();
    std::fs::write(&routing, format!("{{\"layers\": {{{}}}}}", layers.join(", "))).unwrap();
    let out = dir.join("m.gguf");
    let opts = ktq::WriterOptions { gguf_source_sha256: true, gguf_routing_stats: Some(routing), ..Default::default() }
        .gguf_tensor_types(["ffn_down=Q6_K"]);
    ktq::Writer::open(&m, &out, ktq::Format::Gguf { ty: ktq::GgmlType::Q8_0, split_experts: true }, &opts).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let mut reader = Cursor::new(&bytes[..]);
    let content = gguf_file::Content::read(&mut reader).expect("candle reads the header");
    for key in ["ktq.source.sha256", "ktq.routing.blk.0.expert_tokens", "ktq.tensor_type_rules", "ktq.version"] {
        assert!(content.metadata.contains_key(key), "{key} missing");
    }
    let _ = load(&Arch::Llama, &bytes);
    std::fs::remove_dir_all(&dir).unwrap();
}
