//! In-situ quantization for Candle pipelines (feature `candle`): quantize a
//! `candle_core::Tensor` with a ggml block type through ktq and get a
//! `candle_core::quantized::QTensor` back, and the reverse. The blocks are
//! ggml's (bit-identical to ggml's reference quantizers), so Candle's
//! quantized kernels and its own dequantization read them unchanged.
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::{dequantize, invalid, quantize, GgmlType, Result};

/// Candle's name for a ggml type.
pub fn candle_dtype(ty: GgmlType) -> GgmlDType {
    match ty {
        GgmlType::F32 => GgmlDType::F32,
        GgmlType::F16 => GgmlDType::F16,
        GgmlType::Bf16 => GgmlDType::BF16,
        GgmlType::Q4_0 => GgmlDType::Q4_0,
        GgmlType::Q4_1 => GgmlDType::Q4_1,
        GgmlType::Q5_0 => GgmlDType::Q5_0,
        GgmlType::Q5_1 => GgmlDType::Q5_1,
        GgmlType::Q8_0 => GgmlDType::Q8_0,
        GgmlType::Q2K => GgmlDType::Q2K,
        GgmlType::Q3K => GgmlDType::Q3K,
        GgmlType::Q4K => GgmlDType::Q4K,
        GgmlType::Q5K => GgmlDType::Q5K,
        GgmlType::Q6K => GgmlDType::Q6K,
    }
}

/// ktq's name for a Candle ggml type (`None` for types ktq does not implement, e.g. Q8_1, Q8K).
pub fn ggml_type(dtype: GgmlDType) -> Option<GgmlType> {
    Some(match dtype {
        GgmlDType::F32 => GgmlType::F32,
        GgmlDType::F16 => GgmlType::F16,
        GgmlDType::BF16 => GgmlType::Bf16,
        GgmlDType::Q4_0 => GgmlType::Q4_0,
        GgmlDType::Q4_1 => GgmlType::Q4_1,
        GgmlDType::Q5_0 => GgmlType::Q5_0,
        GgmlDType::Q5_1 => GgmlType::Q5_1,
        GgmlDType::Q8_0 => GgmlType::Q8_0,
        GgmlDType::Q2K => GgmlType::Q2K,
        GgmlDType::Q3K => GgmlType::Q3K,
        GgmlDType::Q4K => GgmlType::Q4K,
        GgmlDType::Q5K => GgmlType::Q5K,
        GgmlDType::Q6K => GgmlType::Q6K,
        _ => return None,
    })
}

fn candle_err(e: candle_core::Error) -> crate::Error {
    invalid(format!("candle: {e}"))
}

/// Quantizes `tensor` (any float dtype, any device; its last dimension a
/// multiple of the block size) with ktq into a `QTensor` on `device`.
pub fn quantize_tensor(tensor: &Tensor, ty: GgmlType, device: &Device) -> Result<QTensor> {
    let dims = tensor.dims().to_vec();
    let (block, _) = ty.block();
    let last = *dims.last().ok_or_else(|| invalid("cannot quantize a scalar"))?;
    if block == 0 || last % block != 0 {
        return Err(invalid(format!("{ty:?} needs rows of a multiple of {block} values, the tensor's are {last}")));
    }
    let values: Vec<f32> = tensor
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(candle_err)?;
    let blocks = quantize(&values, ty)?;
    qtensor_from_ggml(candle_dtype(ty), &blocks, dims, device).map_err(candle_err)
}

/// The reverse: the `QTensor`'s blocks dequantized by ktq, as an f32 tensor on the CPU.
pub fn dequantize_qtensor(q: &QTensor) -> Result<Tensor> {
    let ty = ggml_type(q.dtype()).ok_or_else(|| invalid(format!("ktq does not implement {:?}", q.dtype())))?;
    let blocks = q.data().map_err(candle_err)?;
    let n = q.shape().elem_count();
    let values = dequantize(&blocks, n, ty)?;
    Tensor::from_vec(values, q.shape().clone(), &Device::Cpu).map_err(candle_err)
}
