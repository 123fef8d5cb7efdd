//! Feature `candle`: ktq's ggml blocks as Candle QTensors, checked against
//! Candle's own dequantization (its k_quants module, independent of ktq).
#![cfg(feature = "candle")]
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use ktq::GgmlType;

const TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
    GgmlType::Q2K, GgmlType::Q3K, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K,
];

fn weights() -> Tensor {
    // Deterministic, weight-like values in a [32, 512] BF16 tensor (as a checkpoint holds them).
    let v: Vec<f32> = (0..32 * 512).map(|i| (((i * 7919) % 1013) as f32 / 1013.0 - 0.5) * 0.04).collect();
    Tensor::from_vec(v, (32, 512), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap()
}

#[test]
fn candle_dequantizes_ktq_blocks_to_ktq_values() {
    let t = weights();
    let x: Vec<f32> = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    for ty in TYPES {
        let q = ktq::candle::quantize_tensor(&t, ty, &Device::Cpu).unwrap();
        assert_eq!(q.shape().dims(), &[32, 512]);
        assert_eq!(q.dtype(), ktq::candle::candle_dtype(ty));
        let by_candle: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let by_ktq: Vec<f32> = ktq::candle::dequantize_qtensor(&q).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(by_candle, by_ktq, "{ty:?}: Candle and ktq dequantize the same blocks differently");
        // and the values are a quantization of the input
        let rel = (by_ktq.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
            / x.iter().map(|b| b * b).sum::<f32>()).sqrt();
        assert!(rel < 0.5, "{ty:?}: relative error {rel}");
    }
}

#[test]
fn candle_quantized_tensors_round_trip_through_ktq() {
    // Candle's own quantizer -> ktq's dequantization equals Candle's. (Candle's
    // legacy-type blocks are ktq's byte for byte; its K-quant quantizer is a port
    // of an older ggml, whose blocks differ from today's ggml and ktq's.)
    let t = weights().to_dtype(DType::F32).unwrap();
    for ty in [GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K] {
        let q = QTensor::quantize(&t, ktq::candle::candle_dtype(ty)).unwrap();
        let a: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = ktq::candle::dequantize_qtensor(&q).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{ty:?}");
    }
    let bad = Tensor::zeros((4, 100), DType::F32, &Device::Cpu).unwrap();
    let err = ktq::candle::quantize_tensor(&bad, GgmlType::Q4K, &Device::Cpu).unwrap_err();
    assert_eq!(err.status, ktq::Status::InvalidArgument);
}
