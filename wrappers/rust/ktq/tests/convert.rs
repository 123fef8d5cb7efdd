//! The safe API end to end on the demo model shipped in the repository.
use std::path::PathBuf;

fn demo_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../examples/models/tiny-deepseek-v3-fp8")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktq-rust-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn describes_the_demo_model() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let info = model.info().unwrap();
    assert_eq!(info.architecture, "DeepseekV3ForCausalLM");
    assert_eq!(info.family, "deepseek_v3");
    assert_eq!((info.num_layers, info.num_experts, info.experts_per_token), (3, 16, 4));
    assert_eq!((info.first_dense_layers, info.num_shared_experts), (1, 1));
    assert_eq!(info.source_dtype, "F8_E4M3");
    assert_eq!(info.fp8_block, Some((128, 128)));
    let tensors = model.tensors().unwrap();
    assert_eq!(tensors.len(), 256);
    let w = model.tensor("model.layers.1.mlp.experts.3.down_proj.weight").unwrap();
    assert_eq!((w.dtype.as_str(), w.shape.as_slice(), w.layer), ("F8_E4M3", &[256i64, 256][..], Some(1)));
    assert_eq!(model.expert_shape(1, 3, ktq::Proj::Down).unwrap(), (256, 256));
}

#[test]
fn converted_output_equals_the_readers_dequantization() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let out = temp_dir("convert");
    {
        let mut writer = ktq::Writer::open(&model, &out, ktq::Format::HfBf16, &ktq::WriterOptions::default()).unwrap();
        let mut last = 0;
        writer
            .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |p| {
                assert!(p.bytes_done >= last && p.bytes_done <= p.bytes_total);
                last = p.bytes_done;
                true
            })
            .unwrap();
    }
    let converted = ktq::Model::open(&out).unwrap();
    assert_eq!(converted.info().unwrap().source_dtype, "BF16");
    for t in converted.tensors().unwrap() {
        assert_eq!(t.dtype, "BF16", "{}", t.name);
        assert_eq!(converted.read_tensor_bf16(&t.name).unwrap(), model.read_tensor_bf16(&t.name).unwrap(), "{}", t.name);
    }
    // The same conversion through the CLI gives the same files.
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = temp_dir("cli");
        let status = std::process::Command::new(bin).arg("convert").arg(demo_model()).arg(&cli).arg("--quiet")
            .status().unwrap();
        assert!(status.success());
        let mut names: Vec<_> = std::fs::read_dir(&cli).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in &names {
            assert_eq!(std::fs::read(cli.join(name)).unwrap(), std::fs::read(out.join(name)).unwrap(), "{name:?}");
        }
        assert_eq!(names.len(), std::fs::read_dir(&out).unwrap().count());
        std::fs::remove_dir_all(&cli).unwrap();
    }
    // Expert access matches tensor access.
    let expert = model.read_expert_f32(2, 5, ktq::Proj::Up).unwrap();
    assert_eq!(expert, model.read_tensor_f32("model.layers.2.mlp.experts.5.up_proj.weight").unwrap());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn returning_false_cancels_and_leaves_nothing() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let out = temp_dir("cancel");
    let mut writer = ktq::Writer::open(&model, &out, ktq::Format::HfBf16, &ktq::WriterOptions::default()).unwrap();
    let mut calls = 0;
    let err = writer
        .write_all(&ktq::ConvertOptions::default(), |_| {
            calls += 1;
            calls < 5
        })
        .unwrap_err();
    assert_eq!(err.status, ktq::Status::Cancelled);
    assert_eq!(calls, 5);
    drop(writer);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn errors_carry_status_and_message() {
    let err = ktq::Model::open("/nonexistent/ktq-model").err().unwrap();
    assert_eq!(err.status, ktq::Status::NotFound);
    assert!(err.message.contains("/nonexistent/ktq-model"), "{}", err.message);
    let model = ktq::Model::open(demo_model()).unwrap();
    let err = model.read_tensor_f32("no.such.tensor").unwrap_err();
    assert_eq!(err.status, ktq::Status::NotFound);
    assert!(err.message.contains("no.such.tensor"));
}

#[test]
fn a_model_is_shared_across_threads() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let reference = model.read_tensor_bf16("model.layers.1.mlp.experts.0.gate_proj.weight").unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let got = model.read_tensor_bf16("model.layers.1.mlp.experts.0.gate_proj.weight").unwrap();
                    assert_eq!(got, reference);
                }
            });
        }
    });
    assert!(ktq::version().starts_with("0."));
}

#[test]
fn ggml_quantization_round_trips_within_the_block_error() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let w = model.read_tensor_f32("model.layers.1.mlp.experts.2.down_proj.weight").unwrap();
    for (ty, bound) in [(ktq::GgmlType::Q8_0, 1.0 / 127.0), (ktq::GgmlType::Q4_0, 1.0 / 8.0), (ktq::GgmlType::Q5_1, 1.0 / 31.0),
                        (ktq::GgmlType::Q6K, 1.0 / 16.0)] {
        let q = ktq::quantize(&w, ty).unwrap();
        let (block, size) = ty.block();
        assert_eq!(q.len(), w.len() / block * size);
        let back = ktq::dequantize(&q, w.len(), ty).unwrap();
        for (chunk, chunk_back) in w.chunks(block).zip(back.chunks(block)) {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let range = chunk.iter().fold(f32::MIN, |m, v| m.max(*v)) - chunk.iter().fold(f32::MAX, |m, v| m.min(*v));
            let scale = if matches!(ty, ktq::GgmlType::Q5_1) { range } else { amax };
            for (a, b) in chunk.iter().zip(chunk_back) {
                assert!((a - b).abs() <= scale * bound * 1.01 + 1e-6, "{ty:?}: {a} vs {b}");
            }
        }
    }
    let err = ktq::quantize(&w[..33], ktq::GgmlType::Q4_0).unwrap_err();
    assert_eq!(err.status, ktq::Status::InvalidArgument);
}

#[test]
fn importance_lowers_the_error_where_it_is_high() {
    // An imatrix's point: columns with large importance are reproduced better than without it.
    let model = ktq::Model::open(demo_model()).unwrap();
    let w = model.read_tensor_f32("model.layers.1.mlp.experts.2.down_proj.weight").unwrap();
    let n = model.tensor("model.layers.1.mlp.experts.2.down_proj.weight").unwrap().shape[1] as usize;
    let importance: Vec<f32> = (0..n).map(|c| if c % 7 == 0 { 50.0 } else { 0.01 }).collect();
    for ty in [ktq::GgmlType::Q4_0, ktq::GgmlType::Q4_1, ktq::GgmlType::Q3K, ktq::GgmlType::Q4K, ktq::GgmlType::Q6K] {
        let weighted_error = |q: &[u8]| -> f64 {
            let back = ktq::dequantize(q, w.len(), ty).unwrap();
            w.iter().zip(&back).enumerate()
                .map(|(i, (a, b))| importance[i % n] as f64 * ((a - b) as f64).powi(2)).sum()
        };
        let plain = weighted_error(&ktq::quantize(&w, ty).unwrap());
        let with = weighted_error(&ktq::quantize_with_importance(&w, n, &importance, ty).unwrap());
        assert!(with < plain, "{ty:?}: importance-weighted error {with} not below the plain path's {plain}");
    }
    let q8 = ktq::quantize_with_importance(&w, n, &importance, ktq::GgmlType::Q8_0).unwrap();
    assert_eq!(q8, ktq::quantize(&w, ktq::GgmlType::Q8_0).unwrap());
    let err = ktq::quantize_with_importance(&w, n, &importance[1..], ktq::GgmlType::Q4K).unwrap_err();
    assert_eq!(err.status, ktq::Status::InvalidArgument);
}

#[test]
fn kt_amx_format_matches_the_cli() {
    // kt-kernel's AMX INT8 layout, merged safetensors, 2 NUMA parts: the same files as `ktq convert --format kt`
    // (which syncs them: without the syncs, the same bytes).
    let model = ktq::Model::open(demo_model()).unwrap();
    let out = temp_dir("kt");
    {
        let opts = ktq::WriterOptions::default().numa_parts(2).no_sync(true);
        let mut writer = ktq::Writer::open(&model, &out, ktq::Format::KtAmxInt8, &opts).unwrap();
        writer.write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    }
    let shards: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".safetensors")).collect();
    assert_eq!(shards.len(), 3, "{shards:?}"); // 2 MoE layers + the non-expert tensors
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = temp_dir("kt-cli");
        let status = std::process::Command::new(bin)
            .args(["convert"]).arg(demo_model()).arg(&cli)
            .args(["--format", "kt", "--quant-method", "int8", "--threadpool-count", "2", "--quiet"])
            .status().unwrap();
        assert!(status.success());
        for name in &shards {
            assert_eq!(std::fs::read(cli.join(name)).unwrap(), std::fs::read(out.join(name)).unwrap(), "{name}");
        }
        std::fs::remove_dir_all(&cli).unwrap();
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn compressed_tensors_format_matches_the_cli() {
    // W4A16 with zero points and the MSE observer, only the routed experts quantized: the same files as
    // `ktq convert --to compressed-tensors` (the observer changes the bytes, so a dropped option shows).
    let model = ktq::Model::open(demo_model()).unwrap();
    let out = temp_dir("ct");
    let scheme = ktq::CtScheme { bits: 4, group_size: 128, symmetric: false, dtype_rounding: true, observer: ktq::CtObserver::Mse };
    {
        let opts = ktq::WriterOptions::default().targets(["re:.*experts.*"]);
        let mut writer = ktq::Writer::open(&model, &out, ktq::Format::CompressedTensors(scheme), &opts).unwrap();
        writer.write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    }
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"quant_method\": \"compressed-tensors\""), "{config}");
    assert!(config.contains("\"re:.*experts.*\""), "{config}");
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = temp_dir("ct-cli");
        let status = std::process::Command::new(bin)
            .args(["convert"]).arg(demo_model()).arg(&cli)
            .args(["--to", "compressed-tensors", "--scheme", "W4A16", "--asymmetric", "--target", "re:.*experts.*"])
            .args(["--rounding", "dtype", "--observer", "mse", "--quiet"])
            .status().unwrap();
        assert!(status.success());
        for name in ["model.safetensors", "config.json"] {
            assert_eq!(std::fs::read(cli.join(name)).unwrap(), std::fs::read(out.join(name)).unwrap(), "{name}");
        }
        std::fs::remove_dir_all(&cli).unwrap();
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn ct_quantization_in_situ_round_trips() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let w = model.read_tensor_f32("model.layers.1.mlp.experts.2.down_proj.weight").unwrap();
    let bf16: Vec<u16> = w.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
    let w: Vec<f32> = bf16.iter().map(|b| f32::from_bits((*b as u32) << 16)).collect(); // the values quantized
    let (rows, cols) = (256u64, (w.len() / 256) as u64);
    for scheme in [ktq::CtScheme::w4a16(), ktq::CtScheme::w8a16(), ktq::CtScheme { bits: 4, group_size: 64, symmetric: false, dtype_rounding: false, observer: ktq::CtObserver::MinMax }] {
        let t = ktq::ct_quantize_bf16(&bf16, rows, cols, scheme).unwrap();
        assert_eq!(t.packed.len() as u64, rows * cols * scheme.bits as u64 / 32);
        assert_eq!(t.zero_points.is_empty(), scheme.symmetric);
        let back = ktq::ct_dequantize_bf16(&t, rows, cols, scheme).unwrap();
        let levels = if scheme.bits == 4 { 7.5 } else { 127.5 };
        for (row, row_back) in w.chunks(cols as usize).zip(back.chunks(cols as usize)) {
            for (g, gb) in row.chunks(scheme.group_size as usize).zip(row_back.chunks(scheme.group_size as usize)) {
                let amax = g.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (a, b) in g.iter().zip(gb) {
                    let b = f32::from_bits((*b as u32) << 16);
                    // half a step (a whole one for the asymmetric range), plus BF16 rounding of the result
                    assert!((a - b).abs() <= amax / levels * 1.05 + a.abs() / 256.0 + 1e-6, "{scheme:?}: {a} vs {b}");
                }
            }
        }
    }
    // The MSE observer only ever shrinks a group's range, and does for some groups.
    let minmax = ktq::ct_quantize_bf16(&bf16, rows, cols, ktq::CtScheme::w4a16()).unwrap();
    let mse = ktq::ct_quantize_bf16(&bf16, rows, cols, ktq::CtScheme { observer: ktq::CtObserver::Mse, ..ktq::CtScheme::w4a16() }).unwrap();
    let as_f32 = |b: &u16| f32::from_bits((*b as u32) << 16);
    assert!(mse.scales.iter().zip(&minmax.scales).all(|(a, b)| as_f32(a) <= as_f32(b)));
    assert!(mse.scales.iter().zip(&minmax.scales).filter(|(a, b)| as_f32(a) < as_f32(b)).count() > mse.scales.len() / 10);
    let err = ktq::ct_quantize_bf16(&bf16[..256 * 100], 256, 100, ktq::CtScheme::w4a16()).unwrap_err();
    assert_eq!(err.status, ktq::Status::InvalidArgument);
}

#[test]
fn tokenizer_and_perplexity_on_the_demo_model() {
    let tok = ktq::Tokenizer::open(demo_model()).unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../README.md")).unwrap().repeat(3);
    let ids = tok.encode(&text).unwrap();
    assert!(ids.len() > 512 && ids.iter().all(|&i| (0..4096).contains(&i)));
    assert!(tok.encode("").unwrap().is_empty());
    let model = ktq::Model::open(demo_model()).unwrap();
    let p = model.perplexity(&tok, &text, 128, 512).unwrap();
    assert_eq!((p.windows, p.tokens_scored), (4, 4 * 127));
    assert!(p.perplexity > 1.0 && p.perplexity < 4096.0);
    let e = model.perplexity(&tok, "too short", 256, 0).unwrap_err();
    assert_eq!(e.status, ktq::Status::InvalidArgument);
    assert!(ktq::Tokenizer::open("/nonexistent/tokenizer.json").is_err());
}

#[test]
fn gptq_from_a_foreign_forward_pass() {
    // Correlated inputs, as a pipeline's own forward pass would feed them.
    let (rows, cols, n) = (32usize, 128usize, 512usize);
    let mut state = 12345u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let base: Vec<f32> = (0..n * 8).map(|_| rnd()).collect();
    let x: Vec<f32> = (0..n * cols).map(|i| base[(i / cols) * 8 + (i % cols) % 8] + 0.1 * rnd()).collect();
    let w: Vec<f32> = (0..rows * cols).map(|_| rnd() * 0.1).collect();
    let w_bf16: Vec<u16> = w.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
    let mut g = ktq::Gptq::new(cols).unwrap();
    g.add_batch(&x[..n / 2 * cols]).unwrap();
    g.add_batch(&x[n / 2 * cols..]).unwrap();
    assert_eq!(g.rows_seen().unwrap(), n as u64);
    let r = g.quantize_bf16(&w_bf16, ktq::CtScheme::w4a16(), 0.01, true).unwrap();
    assert!(!r.rtn_fallback && r.loss > 0.0);
    // The codes decompress to the weights reported.
    let back = ktq::ct_dequantize_bf16(&r.tensor, rows as u64, cols as u64, ktq::CtScheme::w4a16()).unwrap();
    assert!(back.iter().zip(&r.dequantized).all(|(b, d)| f32::from_bits((*b as u32) << 16) == *d));
    // GPTQ's layer-output error is below round-to-nearest's on these inputs.
    let rtn = ktq::ct_quantize_bf16(&w_bf16, rows as u64, cols as u64, ktq::CtScheme::w4a16()).unwrap();
    let rtn_w: Vec<f32> = ktq::ct_dequantize_bf16(&rtn, rows as u64, cols as u64, ktq::CtScheme::w4a16())
        .unwrap()
        .iter()
        .map(|b| f32::from_bits((*b as u32) << 16))
        .collect();
    let w_exact: Vec<f32> = w_bf16.iter().map(|b| f32::from_bits((*b as u32) << 16)).collect();
    let err = |q: &[f32]| -> f64 {
        let mut e = 0f64;
        for t in 0..n {
            for r in 0..rows {
                let d: f32 = (0..cols).map(|c| x[t * cols + c] * (w_exact[r * cols + c] - q[r * cols + c])).sum();
                e += (d as f64) * (d as f64);
            }
        }
        e
    };
    assert!(err(&r.dequantized) < 0.9 * err(&rtn_w));
    assert!(g.add_batch(&[1.0; 3]).is_err());
}
