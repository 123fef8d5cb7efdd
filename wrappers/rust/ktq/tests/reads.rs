//! kt-kernel outputs read back, GGUF and GPTQ through the writer, and the
//! system description: the parts of the C API beyond plain conversion.
use std::path::PathBuf;

fn demo_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../examples/models/tiny-deepseek-v3-fp8")
}

/// ../shared beside the checkout (or KTQ_SHARED_DIR); `None` skips the test.
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

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktq-rust-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The files of an output folder, without the conversion's journal (ktq's bookkeeping, not part of the model).
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| {
        let e = e.unwrap();
        (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
    }).filter(|(name, _)| !name.starts_with(".ktq-journal")).collect();
    out.sort();
    out
}

fn bf16_round(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits(((b + 0x7fff + ((b >> 16) & 1)) >> 16) << 16)
}

#[test]
fn kt_output_reads_back_within_half_a_step_and_loose_files_merge_to_the_merged_layout() {
    let model = ktq::Model::open(demo_model()).unwrap();
    let info = model.info().unwrap();
    let (merged, loose, remerged) = (temp_dir("kt-merged"), temp_dir("kt-loose"), temp_dir("kt-remerged"));
    let opts = ktq::ConvertOptions { threads: 2, ..Default::default() };
    for (dir, loose_files) in [(&merged, false), (&loose, true)] {
        let w = ktq::WriterOptions::default().numa_parts(1).loose_files(loose_files);
        ktq::Writer::open(&model, dir, ktq::Format::KtAmxInt8, &w).unwrap().write_all(&opts, |_| true).unwrap();
    }
    for (dir, is_merged) in [(&merged, true), (&loose, false)] {
        let out = ktq::KtOutput::open(dir).unwrap();
        assert_eq!(out.is_merged(), is_merged);
        let parts = out.parts().unwrap();
        assert_eq!(parts.len(), (info.num_moe_layers * info.num_experts * 3) as usize);
        let first_moe = info.first_dense_layers;
        let (i, p) = parts.iter().enumerate()
            .find(|(_, p)| p.layer == first_moe && p.expert == 5 && p.proj == ktq::Proj::Down).unwrap();
        assert_eq!((p.bits, p.part), (8, 0));
        assert_eq!((p.rows, p.cols), model.expert_shape(first_moe, 5, ktq::Proj::Down).unwrap());
        // kt-kernel quantizes the BF16 value of each weight per row: code * scale is within half a step of it.
        let w = model.read_expert_f32(first_moe, 5, ktq::Proj::Down).unwrap();
        let (packed, scales) = out.read(i).unwrap();
        assert_eq!((packed.len(), scales.len()), (p.packed_bytes, p.rows));
        let dq = out.dequantize(i).unwrap();
        for r in 0..p.rows {
            assert!(scales[r] > 0.0);
            for c in 0..p.cols {
                let (x, y) = (bf16_round(w[r * p.cols + c]), dq[r * p.cols + c]);
                // The code is x times a rounded reciprocal of the scale: a value on a half step may go either way.
                assert!((x - y).abs() <= scales[r] * 0.5 * (1.0 + 1e-5), "row {r} col {c}: {x} vs {y}");
            }
        }
    }
    ktq::kt_merge(&remerged, &loose, Some(&model), false).unwrap();
    let (a, b) = (files(&remerged), files(&merged));
    assert_eq!(a.iter().map(|f| &f.0).collect::<Vec<_>>(), b.iter().map(|f| &f.0).collect::<Vec<_>>());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.1 == y.1, "{} differs", x.0);
    }
    // An existing output is refused unless overwrite is asked for.
    let e = ktq::kt_merge(&remerged, &loose, Some(&model), false).unwrap_err();
    assert!(e.message.contains(remerged.file_name().unwrap().to_str().unwrap()), "{e}");
    ktq::kt_merge(&remerged, &loose, Some(&model), true).unwrap();
    let e = ktq::KtOutput::open("/nonexistent/kt-out").err().unwrap();
    assert!(e.message.contains("/nonexistent/kt-out"), "{e}");
    for d in [merged, loose, remerged] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn gguf_format_matches_the_cli() {
    let Some(src) = shared("models/tiny-qwen3-moe") else { return };
    let model = ktq::Model::open(&src).unwrap();
    let dir = temp_dir("gguf");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m.gguf");
    let fmt = ktq::Format::Gguf { ty: ktq::GgmlType::Q4K, split_experts: false };
    let w = ktq::WriterOptions::default().gguf_tensor_types(["ffn_down_exps=Q6_K"]);
    ktq::Writer::open(&model, &out, fmt, &w).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    // Read back over the checkpoint: a BF16 file gives the checkpoint's own weights (Q/K un-permuted).
    let bf16 = dir.join("bf16.gguf");
    ktq::Writer::open(&model, &bf16, ktq::Format::Gguf { ty: ktq::GgmlType::Bf16, split_experts: true },
                      &ktq::WriterOptions::default()).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    let over = ktq::Model::open_with(&src, &ktq::OpenOptions { gguf_weights: Some(bf16), ..Default::default() })
        .unwrap();
    for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                 "model.layers.2.mlp.experts.5.down_proj.weight", "model.norm.weight"] {
        assert!(over.read_tensor_f32(name).unwrap() == model.read_tensor_f32(name).unwrap(), "{name}");
    }
    let q4 = ktq::Model::open_with(&src, &ktq::OpenOptions { gguf_weights: Some(out.clone()), ..Default::default() })
        .unwrap();
    assert!(q4.read_expert_f32(1, 3, ktq::Proj::Up).unwrap() != model.read_expert_f32(1, 3, ktq::Proj::Up).unwrap());
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = dir.join("cli.gguf");
        let status = std::process::Command::new(bin).arg("convert").arg(&src).arg(&cli)
            .args(["--to", "gguf", "--type", "Q4_K", "--tensor-type", "ffn_down_exps=Q6_K", "--quiet"])
            .status().unwrap();
        assert!(status.success());
        assert!(std::fs::read(&cli).unwrap() == bytes, "the GGUF files differ");
    }
    // The pre-tokenizer name: derived (the shared tokenizer is GPT-2's split), or given.
    let has = |path: &std::path::Path, text: &[u8]| std::fs::read(path).unwrap().windows(text.len()).any(|w| w == text);
    let named = dir.join("pre.gguf");
    ktq::Writer::open(&model, &named, fmt, &ktq::WriterOptions::default().gguf_tokenizer_pre("qwen2")).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    let pre_value = |name: &str| [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    assert!(has(&out, &pre_value("gpt-2")) && !has(&out, &pre_value("qwen2")));
    assert!(has(&named, &pre_value("qwen2")) && !has(&named, &pre_value("gpt-2")));
    // A llama-quantize mixture.
    let mixed = dir.join("mix.gguf");
    ktq::Writer::open(&model, &mixed, fmt, &ktq::WriterOptions::default().gguf_mix("Q4_K_M")).unwrap()
        .write_all(&ktq::ConvertOptions { threads: 2, ..Default::default() }, |_| true).unwrap();
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = dir.join("cli-mix.gguf");
        let status = std::process::Command::new(bin).arg("convert").arg(&src).arg(&cli)
            .args(["--to", "gguf", "--type", "Q4_K_M", "--quiet"]).status().unwrap();
        assert!(status.success());
        assert!(std::fs::read(&cli).unwrap() == std::fs::read(&mixed).unwrap(), "the Q4_K_M files differ");
    }
    let e = ktq::Writer::open(&model, dir.join("bad.gguf"), fmt, &ktq::WriterOptions::default().gguf_mix("Q9_K_X"))
        .err().unwrap();
    assert!(e.message.contains("Q9_K_X"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gptq_engine_matches_the_cli() {
    let Some(calib) = shared("data/calib.txt") else { return };
    let model = ktq::Model::open(demo_model()).unwrap();
    let tok = ktq::Tokenizer::open(demo_model()).unwrap();
    let copts = ktq::CalibrationOptions { samples: 4, max_sequence_length: 64, seed: 7, text_field: None };
    let calibration = ktq::Calibration::open(&calib, &tok, &copts).unwrap();
    assert_eq!(calibration.info().unwrap(), (4, 256));
    let out = temp_dir("gptq");
    let scheme = ktq::CtScheme::w4a16();
    let mut layers = Vec::new();
    ktq::Writer::open(&model, &out, ktq::Format::CompressedTensors(scheme), &ktq::WriterOptions::default()).unwrap()
        .write_all_gptq(&ktq::ConvertOptions { threads: 2, ..Default::default() }, &calibration,
                        &ktq::GptqEngineOptions::default(), |p| {
            layers.push(p.layer);
            true
        }).unwrap();
    assert!(layers.contains(&Some(2)), "progress never reached the last layer");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"actorder\": \"static\""), "{config}");
    if let Ok(bin) = std::env::var("KTQ_BIN") {
        let cli = temp_dir("gptq-cli");
        let status = std::process::Command::new(bin).arg("convert").arg(demo_model()).arg(&cli)
            .args(["--to", "compressed-tensors", "--scheme", "W4A16", "--engine", "gptq", "--dataset"]).arg(&calib)
            .args(["--num-calibration-samples", "4", "--max-sequence-length", "64", "--seed", "7", "--threads", "2"])
            .arg("--quiet").status().unwrap();
        assert!(status.success());
        for name in ["model.safetensors", "config.json"] {
            assert!(std::fs::read(cli.join(name)).unwrap() == std::fs::read(out.join(name)).unwrap(), "{name} differs");
        }
        std::fs::remove_dir_all(&cli).unwrap();
    }
    std::fs::remove_dir_all(&out).unwrap();
    // Samples tokenized by the caller.
    let ids = tok.encode("The quick brown fox jumps over the lazy dog.").unwrap();
    let c = ktq::Calibration::from_tokens(&[ids.clone(), ids[..4].to_vec()]).unwrap();
    assert_eq!(c.info().unwrap(), (2, ids.len() as u64 + 4));
}

#[test]
fn awq_engine_matches_the_cli() {
    let Some(calib) = shared("data/calib.txt") else { return };
    let model = ktq::Model::open(demo_model()).unwrap();
    let tok = ktq::Tokenizer::open(demo_model()).unwrap();
    let copts = ktq::CalibrationOptions { samples: 4, max_sequence_length: 64, seed: 7, text_field: None };
    let calibration = ktq::Calibration::open(&calib, &tok, &copts).unwrap();
    let scheme = ktq::CtScheme { symmetric: false, ..ktq::CtScheme::w4a16() };
    let bin = std::env::var("KTQ_BIN").ok();
    for all_tokens in [false, true] {
        let out = temp_dir(if all_tokens { "awq-all" } else { "awq" });
        let awq = ktq::AwqEngineOptions { moe_hessian_all: all_tokens, ..Default::default() };
        ktq::Writer::open(&model, &out, ktq::Format::CompressedTensors(scheme), &ktq::WriterOptions::default())
            .unwrap()
            .write_all_awq(&ktq::ConvertOptions { threads: 2, ..Default::default() }, &calibration, &awq, |_| true)
            .unwrap();
        let report = std::fs::read_to_string(out.join("awq_report.json")).unwrap();
        assert_eq!(report.contains("routed_rows"), !all_tokens, "{report}");
        if let Some(bin) = &bin {
            let cli = temp_dir("awq-cli");
            let status = std::process::Command::new(bin).arg("convert").arg(demo_model()).arg(&cli)
                .args(["--to", "compressed-tensors", "--engine", "awq", "--dataset"]).arg(&calib)
                .args(["--num-calibration-samples", "4", "--max-sequence-length", "64", "--seed", "7", "--threads", "2"])
                .args(["--moe-hessian", if all_tokens { "all" } else { "blend" }, "--quiet"]).status().unwrap();
            assert!(status.success());
            for name in ["model.safetensors", "config.json", "awq_report.json"] {
                assert!(std::fs::read(cli.join(name)).unwrap() == std::fs::read(out.join(name)).unwrap(), "{name} differs");
            }
            std::fs::remove_dir_all(&cli).unwrap();
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

// The calibrated engines honour max_cpu_memory: a layer that needs more stops
// before anything of it is written, with an error naming the limit.
#[test]
fn calibrated_engines_honour_the_host_memory_limit() {
    let Some(calib) = shared("data/calib.txt") else { return };
    let model = ktq::Model::open(demo_model()).unwrap();
    let tok = ktq::Tokenizer::open(demo_model()).unwrap();
    let copts = ktq::CalibrationOptions { samples: 4, max_sequence_length: 64, seed: 7, text_field: None };
    let calibration = ktq::Calibration::open(&calib, &tok, &copts).unwrap();
    let opts = ktq::ConvertOptions { threads: 2, ..Default::default() };
    for engine in ["GPTQ", "AWQ"] {
        let out = temp_dir(&format!("{engine}-small"));
        let mut writer =
            ktq::Writer::open(&model, &out, ktq::Format::CompressedTensors(ktq::CtScheme::w4a16()), &ktq::WriterOptions::default())
                .unwrap();
        let r = if engine == "GPTQ" {
            let gptq = ktq::GptqEngineOptions { max_cpu_memory: 1 << 20, ..Default::default() };
            writer.write_all_gptq(&opts, &calibration, &gptq, |_| true)
        } else {
            let awq = ktq::AwqEngineOptions { max_cpu_memory: 1 << 20, ..Default::default() };
            writer.write_all_awq(&opts, &calibration, &awq, |_| true)
        };
        let e = r.expect_err("1 MiB is below what a layer needs");
        assert_eq!(e.status, ktq::Status::NoMemory, "{e:?}");
        assert!(e.message.contains(&format!("{engine} needs about")) && e.message.contains("limit is 1 MiB"), "{e:?}");
        // Checked before layer 0 runs: nothing of it was computed or written.
        assert!(e.message.contains("host memory for layer 0"), "{e:?}");
        drop(writer);
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn system_info_describes_this_machine() {
    let s = ktq::system_info().unwrap();
    assert!(s.cores >= 1 && s.pus >= s.cores && s.numa_nodes >= 1, "{s:?}");
    assert!(!s.cpu_model.is_empty());
    assert!(!s.amx_int8 || s.amx_tile, "{s:?}");
    assert_eq!(s.cuda_devices > 0, !s.cuda_device0.is_empty(), "{s:?}");
}
