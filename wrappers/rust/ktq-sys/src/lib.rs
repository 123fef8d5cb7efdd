//! Raw declarations of libktq's C ABI, written by hand from `include/ktq/*.h`
//! (the `systest` crate beside this one checks every struct layout, constant
//! and function against the real header). Use the safe `ktq` crate instead
//! unless you need the raw calls.
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::{c_char, c_int, c_uint, c_void};

// ---- common.h ----------------------------------------------------------

pub const KTQ_VERSION_MAJOR: c_uint = 0;
pub const KTQ_VERSION_MINOR: c_uint = 1;
pub const KTQ_VERSION_PATCH: c_uint = 0;
pub const KTQ_VERSION_NUMBER: c_uint = KTQ_VERSION_MAJOR * 10000 + KTQ_VERSION_MINOR * 100 + KTQ_VERSION_PATCH;

pub type ktq_status = c_int;
pub const KTQ_OK: ktq_status = 0;
pub const KTQ_ERR_INVALID_ARGUMENT: ktq_status = -1;
pub const KTQ_ERR_IO: ktq_status = -2;
pub const KTQ_ERR_FORMAT: ktq_status = -3;
pub const KTQ_ERR_UNSUPPORTED: ktq_status = -4;
pub const KTQ_ERR_NOT_FOUND: ktq_status = -5;
pub const KTQ_ERR_NO_MEMORY: ktq_status = -6;
pub const KTQ_ERR_CANCELLED: ktq_status = -7;
pub const KTQ_ERR_BUFFER_TOO_SMALL: ktq_status = -8;
pub const KTQ_ERR_VERSION: ktq_status = -9;
pub const KTQ_ERR_NO_SPACE: ktq_status = -10;
pub const KTQ_ERR_STATE: ktq_status = -11;
pub const KTQ_ERR_INTERNAL: ktq_status = -12;

#[repr(C)]
pub struct ktq_error {
    _private: [u8; 0],
}

pub type ktq_dtype = c_int;
pub const KTQ_DTYPE_UNKNOWN: ktq_dtype = 0;
pub const KTQ_DTYPE_F32: ktq_dtype = 1;
pub const KTQ_DTYPE_F16: ktq_dtype = 2;
pub const KTQ_DTYPE_BF16: ktq_dtype = 3;
pub const KTQ_DTYPE_F8_E4M3: ktq_dtype = 4;
pub const KTQ_DTYPE_F8_E5M2: ktq_dtype = 5;
pub const KTQ_DTYPE_F64: ktq_dtype = 6;
pub const KTQ_DTYPE_I8: ktq_dtype = 7;
pub const KTQ_DTYPE_U8: ktq_dtype = 8;
pub const KTQ_DTYPE_I16: ktq_dtype = 9;
pub const KTQ_DTYPE_I32: ktq_dtype = 10;
pub const KTQ_DTYPE_I64: ktq_dtype = 11;
pub const KTQ_DTYPE_BOOL: ktq_dtype = 12;

pub const KTQ_PROGRESS_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_progress {
    pub version: c_uint,
    pub layer: c_int,
    pub layers_total: c_int,
    pub tensor: *const c_char,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

pub type ktq_progress_cb = Option<unsafe extern "C" fn(progress: *const ktq_progress, payload: *mut c_void) -> c_int>;

// ---- model.h -----------------------------------------------------------

#[repr(C)]
pub struct ktq_model {
    _private: [u8; 0],
}

pub const KTQ_OPEN_OPTIONS_VERSION: c_uint = 3;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_open_options {
    pub version: c_uint,
    pub threads: c_int,
    pub max_header_bytes: u64,
    pub kt_experts: *const c_char,
    // version 3
    pub gguf_weights: *const c_char,
}

pub type ktq_arch_family = c_int;
pub const KTQ_ARCH_UNKNOWN: ktq_arch_family = 0;
pub const KTQ_ARCH_LLAMA: ktq_arch_family = 1;
pub const KTQ_ARCH_QWEN2: ktq_arch_family = 2;
pub const KTQ_ARCH_QWEN3: ktq_arch_family = 3;
pub const KTQ_ARCH_QWEN2_MOE: ktq_arch_family = 4;
pub const KTQ_ARCH_QWEN3_MOE: ktq_arch_family = 5;
pub const KTQ_ARCH_QWEN3_5_MOE: ktq_arch_family = 6;
pub const KTQ_ARCH_MIXTRAL: ktq_arch_family = 7;
pub const KTQ_ARCH_DEEPSEEK_V2: ktq_arch_family = 8;
pub const KTQ_ARCH_DEEPSEEK_V3: ktq_arch_family = 9;
pub const KTQ_ARCH_GLM4_MOE: ktq_arch_family = 10;
pub const KTQ_ARCH_GENERIC_MOE: ktq_arch_family = 11;

pub type ktq_expert_storage = c_int;
pub const KTQ_EXPERTS_NONE: ktq_expert_storage = 0;
pub const KTQ_EXPERTS_PER_EXPERT: ktq_expert_storage = 1;
pub const KTQ_EXPERTS_FUSED: ktq_expert_storage = 2;

pub const KTQ_MODEL_INFO_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_model_info {
    pub version: c_uint,
    pub architecture: *const c_char,
    pub model_type: *const c_char,
    pub path: *const c_char,
    pub notice: *const c_char,
    pub family: ktq_arch_family,
    pub num_layers: c_int,
    pub hidden_size: c_int,
    pub intermediate_size: c_int,
    pub moe_intermediate_size: c_int,
    pub num_experts: c_int,
    pub experts_per_token: c_int,
    pub first_dense_layers: c_int,
    pub num_moe_layers: c_int,
    pub num_shared_experts: c_int,
    pub vocab_size: c_int,
    pub expert_storage: ktq_expert_storage,
    pub source_dtype: ktq_dtype,
    pub fp8_block_rows: c_int,
    pub fp8_block_cols: c_int,
    pub num_tensors: usize,
    pub num_files: usize,
    pub total_bytes: u64,
}

pub const KTQ_MAX_DIMS: usize = 8;
pub const KTQ_TENSOR_INFO_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_tensor_info {
    pub version: c_uint,
    pub name: *const c_char,
    pub file: *const c_char,
    pub dtype: ktq_dtype,
    pub ndim: c_int,
    pub shape: [i64; KTQ_MAX_DIMS],
    pub nbytes: u64,
    pub layer: c_int,
}

pub type ktq_expert_proj = c_int;
pub const KTQ_PROJ_GATE: ktq_expert_proj = 0;
pub const KTQ_PROJ_UP: ktq_expert_proj = 1;
pub const KTQ_PROJ_DOWN: ktq_expert_proj = 2;

// ---- writer.h ----------------------------------------------------------

pub type ktq_format = c_int;
pub const KTQ_FORMAT_HF_BF16: ktq_format = 1;
pub const KTQ_FORMAT_KT_AMXINT4: ktq_format = 2;
pub const KTQ_FORMAT_KT_AMXINT8: ktq_format = 3;
pub const KTQ_FORMAT_COMPRESSED_TENSORS: ktq_format = 4;
pub const KTQ_FORMAT_GGUF: ktq_format = 5;
pub const KTQ_FORMAT_KT_AWQ: ktq_format = 6;

pub type ktq_engine = c_int;
pub const KTQ_ENGINE_DEFAULT: ktq_engine = 0;
pub const KTQ_ENGINE_CAST: ktq_engine = 1;
pub const KTQ_ENGINE_KT_AMX: ktq_engine = 2;
pub const KTQ_ENGINE_RTN: ktq_engine = 3;
pub const KTQ_ENGINE_GGML: ktq_engine = 4;
pub const KTQ_ENGINE_GPTQ: ktq_engine = 5;
pub const KTQ_ENGINE_AWQ: ktq_engine = 6;

pub type ktq_device = c_int;
pub const KTQ_DEVICE_CPU: ktq_device = 0;
pub const KTQ_DEVICE_CUDA: ktq_device = 1;

#[repr(C)]
pub struct ktq_writer {
    _private: [u8; 0],
}

pub const KTQ_WRITER_OPTIONS_VERSION: c_uint = 7;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_writer_options {
    pub version: c_uint,
    pub max_shard_bytes: u64,
    pub copy_aux_files: c_int,
    pub overwrite: c_int,
    pub resume: c_int,
    pub resume_layer: c_int,
    pub keep_partial: c_int,
    pub numa_parts: c_int,
    pub loose_files: c_int,
    pub no_layer_sync: c_int,
    // version 3: compressed-tensors
    pub weight_bits: c_int,
    pub group_size: c_int,
    pub asymmetric: c_int,
    pub targets: *const c_char,
    pub ignore: *const c_char,
    pub scale_dtype: ktq_dtype,
    pub ct_rounding: ktq_ct_rounding,
    pub gguf_type: c_int,
    pub gguf_split_experts: c_int,
    pub gguf_tensor_types: *const c_char,
    // version 4
    pub gguf_mix: *const c_char,
    pub gguf_tokenizer_pre: *const c_char,
    pub gguf_imatrix: *const c_char,
    pub gguf_routing_stats: *const c_char,
    pub gguf_source_sha256: c_int,
    // version 6
    pub no_sync: c_int,
    // version 7
    pub ct_observer: ktq_ct_observer,
}

pub const KTQ_LAYER_GLOBALS: c_int = -1;

// ktq/kt.h: kt-kernel AMX outputs read back.
#[repr(C)]
pub struct ktq_kt_output {
    _private: [u8; 0],
}

pub const KTQ_KT_PART_INFO_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_kt_part_info {
    pub version: c_uint,
    pub name: *const c_char,
    pub layer: c_int,
    pub expert: c_int,
    pub proj: ktq_expert_proj,
    pub part: c_int,
    pub method: ktq_format,
    pub rows: u64,
    pub cols: u64,
    pub packed_bytes: u64,
}

pub const KTQ_QUANTIZE_OPTIONS_VERSION: c_uint = 6;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_quantize_options {
    pub version: c_uint,
    pub engine: ktq_engine,
    pub threads: c_int,
    pub progress: ktq_progress_cb,
    pub payload: *mut c_void,
    pub allow_non_finite: c_int,
    // version 2
    pub device: ktq_device,
    // version 3
    pub calibration: *const ktq_calibration,
    pub dampening_frac: f64,
    pub gptq_block_size: c_int,
    pub act_order: ktq_act_order,
    pub calibration_batch: c_int,
    pub moe_hessian: ktq_moe_hessian,
    pub moe_all_tokens_weight: f64,
    pub max_device_memory: u64,
    pub devices: *const c_int,
    pub device_count: usize,
    // version 5
    pub awq_grid: c_int,
    pub awq_duo_scaling: c_int,
    pub awq_clip: c_int,
    pub max_host_memory: u64,
}

// ---- system.h ----------------------------------------------------------

pub const KTQ_SYSTEM_INFO_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_system_info {
    pub version: c_uint,
    pub numa_nodes: c_int,
    pub cores: c_int,
    pub pus: c_int,
    pub avx2: c_int,
    pub avx512f: c_int,
    pub avx512_vnni: c_int,
    pub avx512_bf16: c_int,
    pub amx_tile: c_int,
    pub amx_int8: c_int,
    pub amx_bf16: c_int,
    pub cuda_built: c_int,
    pub cuda_devices: c_int,
    pub cpu_model: [c_char; 128],
    pub cuda_device0: [c_char; 128],
}

// ---- quant.h -----------------------------------------------------------

pub type ktq_ggml_type = c_int;
pub const KTQ_GGML_F32: ktq_ggml_type = 0;
pub const KTQ_GGML_F16: ktq_ggml_type = 1;
pub const KTQ_GGML_Q4_0: ktq_ggml_type = 2;
pub const KTQ_GGML_Q4_1: ktq_ggml_type = 3;
pub const KTQ_GGML_Q5_0: ktq_ggml_type = 6;
pub const KTQ_GGML_Q5_1: ktq_ggml_type = 7;
pub const KTQ_GGML_Q8_0: ktq_ggml_type = 8;
pub const KTQ_GGML_Q2_K: ktq_ggml_type = 10;
pub const KTQ_GGML_Q3_K: ktq_ggml_type = 11;
pub const KTQ_GGML_Q4_K: ktq_ggml_type = 12;
pub const KTQ_GGML_Q5_K: ktq_ggml_type = 13;
pub const KTQ_GGML_Q6_K: ktq_ggml_type = 14;
pub const KTQ_GGML_BF16: ktq_ggml_type = 30;

extern "C" {
    pub fn ktq_ggml_type_name(ty: ktq_ggml_type) -> *const c_char;
    pub fn ktq_ggml_block_size(ty: ktq_ggml_type) -> usize;
    pub fn ktq_ggml_type_size(ty: ktq_ggml_type) -> usize;
    pub fn ktq_quantize_tensor(
        dst: *mut c_void,
        dst_bytes: usize,
        src: *const f32,
        n: usize,
        ty: ktq_ggml_type,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_quantize_rows(
        dst: *mut c_void,
        dst_bytes: usize,
        src: *const f32,
        rows: usize,
        n_per_row: usize,
        importance: *const f32,
        ty: ktq_ggml_type,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_dequantize_tensor(
        dst: *mut f32,
        n: usize,
        src: *const c_void,
        src_bytes: usize,
        ty: ktq_ggml_type,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

// ---- compressed_tensors.h ----------------------------------------------

pub type ktq_ct_rounding = c_int;
pub const KTQ_CT_ROUND_FP32: ktq_ct_rounding = 0;
pub const KTQ_CT_ROUND_DTYPE: ktq_ct_rounding = 1;

pub type ktq_ct_observer = c_int;
pub const KTQ_CT_OBSERVER_MINMAX: ktq_ct_observer = 0;
pub const KTQ_CT_OBSERVER_MSE: ktq_ct_observer = 1;

pub const KTQ_CT_SCHEME_VERSION: c_uint = 2;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_ct_scheme {
    pub version: c_uint,
    pub num_bits: c_int,
    pub group_size: c_int,
    pub symmetric: c_int,
    pub dtype: ktq_dtype,
    pub rounding: ktq_ct_rounding,
    // version 2
    pub observer: ktq_ct_observer,
}

extern "C" {
    pub fn ktq_ct_scheme_init(scheme: *mut ktq_ct_scheme, version: c_uint) -> ktq_status;
    pub fn ktq_ct_sizes(
        packed_words: *mut usize,
        scale_count: *mut usize,
        zero_point_words: *mut usize,
        rows: u64,
        cols: u64,
        scheme: *const ktq_ct_scheme,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_ct_quantize(
        packed: *mut i32,
        packed_words: usize,
        scales: *mut c_void,
        scale_count: usize,
        zero_points: *mut i32,
        zero_point_words: usize,
        weights: *const c_void,
        rows: u64,
        cols: u64,
        scheme: *const ktq_ct_scheme,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_ct_dequantize(
        weights: *mut c_void,
        packed: *const i32,
        packed_words: usize,
        scales: *const c_void,
        scale_count: usize,
        zero_points: *const i32,
        zero_point_words: usize,
        rows: u64,
        cols: u64,
        scheme: *const ktq_ct_scheme,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

extern "C" {
    pub fn ktq_version_number() -> c_uint;
    pub fn ktq_version() -> *const c_char;
    pub fn ktq_status_str(status: c_int) -> *const c_char;
    pub fn ktq_is_error(status: c_int) -> c_int;

    pub fn ktq_error_status(err: *const ktq_error) -> ktq_status;
    pub fn ktq_error_message(err: *const ktq_error) -> *const c_char;
    pub fn ktq_error_free(err: *mut ktq_error);

    pub fn ktq_dtype_name(dtype: ktq_dtype) -> *const c_char;
    pub fn ktq_dtype_size(dtype: ktq_dtype) -> usize;

    pub fn ktq_open_options_init(opts: *mut ktq_open_options, version: c_uint) -> ktq_status;
    pub fn ktq_open_model(
        out: *mut *mut ktq_model,
        path: *const c_char,
        opts: *const ktq_open_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_model_free(model: *mut ktq_model);
    pub fn ktq_model_info_init(info: *mut ktq_model_info, version: c_uint) -> ktq_status;
    pub fn ktq_model_get_info(info: *mut ktq_model_info, model: *const ktq_model, err: *mut *mut ktq_error)
        -> ktq_status;
    pub fn ktq_arch_family_name(family: ktq_arch_family) -> *const c_char;
    pub fn ktq_model_layer_is_moe(model: *const ktq_model, layer: c_int) -> c_int;
    pub fn ktq_tensor_info_init(info: *mut ktq_tensor_info, version: c_uint) -> ktq_status;
    pub fn ktq_model_tensor_count(model: *const ktq_model) -> usize;
    pub fn ktq_model_tensor_info(
        info: *mut ktq_tensor_info,
        model: *const ktq_model,
        index: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_model_find_tensor(
        index: *mut usize,
        model: *const ktq_model,
        name: *const c_char,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_model_read_tensor(
        buf: *mut c_void,
        buf_bytes: usize,
        model: *const ktq_model,
        name: *const c_char,
        dtype: ktq_dtype,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_model_expert_shape(
        rows: *mut i64,
        cols: *mut i64,
        model: *const ktq_model,
        layer: c_int,
        expert: c_int,
        proj: ktq_expert_proj,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_model_read_expert(
        buf: *mut c_void,
        buf_bytes: usize,
        model: *const ktq_model,
        layer: c_int,
        expert: c_int,
        proj: ktq_expert_proj,
        dtype: ktq_dtype,
        err: *mut *mut ktq_error,
    ) -> ktq_status;

    pub fn ktq_format_name(format: ktq_format) -> *const c_char;
    pub fn ktq_writer_options_init(opts: *mut ktq_writer_options, version: c_uint) -> ktq_status;
    pub fn ktq_writer_open(
        out: *mut *mut ktq_writer,
        model: *const ktq_model,
        out_dir: *const c_char,
        format: ktq_format,
        opts: *const ktq_writer_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_estimate_output(
        output_bytes: *mut u64,
        output_files: *mut usize,
        peak_memory: *mut u64,
        model: *const ktq_model,
        format: ktq_format,
        opts: *const ktq_writer_options,
        threads: c_int,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_writer_plan(
        output_bytes: *mut u64,
        output_files: *mut usize,
        writer: *const ktq_writer,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_writer_finish(writer: *mut ktq_writer, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_writer_free(writer: *mut ktq_writer);
    pub fn ktq_quantize_options_init(opts: *mut ktq_quantize_options, version: c_uint) -> ktq_status;
    pub fn ktq_quantize_layer(
        model: *const ktq_model,
        layer: c_int,
        opts: *const ktq_quantize_options,
        writer: *mut ktq_writer,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_write(
        model: *const ktq_model,
        opts: *const ktq_quantize_options,
        writer: *mut ktq_writer,
        err: *mut *mut ktq_error,
    ) -> ktq_status;

    pub fn ktq_system_info_init(info: *mut ktq_system_info, version: c_uint) -> ktq_status;
    pub fn ktq_system_get_info(info: *mut ktq_system_info, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_system_numa_cores(node: c_int) -> c_int;

    pub fn ktq_kt_output_open(out: *mut *mut ktq_kt_output, dir: *const c_char, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_kt_output_free(output: *mut ktq_kt_output);
    pub fn ktq_kt_output_part_count(output: *const ktq_kt_output) -> usize;
    pub fn ktq_kt_output_is_merged(output: *const ktq_kt_output) -> c_int;
    pub fn ktq_kt_part_info_init(info: *mut ktq_kt_part_info, version: c_uint) -> ktq_status;
    pub fn ktq_kt_output_part(
        info: *mut ktq_kt_part_info,
        output: *const ktq_kt_output,
        index: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_kt_output_read(
        packed: *mut c_void,
        packed_bytes: usize,
        scales: *mut f32,
        rows: usize,
        output: *const ktq_kt_output,
        index: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_kt_output_dequantize(
        dst: *mut f32,
        count: usize,
        output: *const ktq_kt_output,
        index: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_kt_merge(
        out_dir: *const c_char,
        loose_dir: *const c_char,
        model: *const ktq_model,
        opts: *const ktq_writer_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

// ---- text.h ------------------------------------------------------------

#[repr(C)]
pub struct ktq_tokenizer {
    _private: [u8; 0],
}

extern "C" {
    pub fn ktq_tokenizer_open(out: *mut *mut ktq_tokenizer, path: *const c_char, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_tokenizer_free(tokenizer: *mut ktq_tokenizer);
    pub fn ktq_tokenizer_vocab_size(tokenizer: *const ktq_tokenizer) -> usize;
    pub fn ktq_tokenizer_encode(
        ids: *mut i32,
        capacity: usize,
        count: *mut usize,
        tokenizer: *const ktq_tokenizer,
        text: *const c_char,
        text_len: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

// ---- eval.h ------------------------------------------------------------

pub const KTQ_EVAL_OPTIONS_VERSION: c_uint = 2;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_eval_options {
    pub version: c_uint,
    pub window: c_int,
    pub max_tokens: u64,
    pub batch_windows: c_int,
    pub progress: ktq_progress_cb,
    pub payload: *mut c_void,
    pub token_nll: *mut f64,
    pub token_nll_capacity: usize,
    pub device: ktq_device,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ktq_eval_result {
    pub perplexity: f64,
    pub mean_nll: f64,
    pub tokens_scored: u64,
    pub windows: u64,
}

extern "C" {
    pub fn ktq_eval_options_init(opts: *mut ktq_eval_options, version: c_uint) -> ktq_status;
    pub fn ktq_eval_perplexity(
        out: *mut ktq_eval_result,
        model: *const ktq_model,
        tokenizer: *const ktq_tokenizer,
        text: *const c_char,
        text_len: usize,
        opts: *const ktq_eval_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

// ---- calibration.h -----------------------------------------------------

#[repr(C)]
pub struct ktq_calibration {
    _private: [u8; 0],
}

pub const KTQ_CALIBRATION_OPTIONS_VERSION: c_uint = 1;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_calibration_options {
    pub version: c_uint,
    pub num_samples: c_int,
    pub max_sequence_length: c_int,
    pub seed: u64,
    pub text_field: *const c_char,
}

extern "C" {
    pub fn ktq_calibration_options_init(opts: *mut ktq_calibration_options, version: c_uint) -> ktq_status;
    pub fn ktq_calibration_open(
        out: *mut *mut ktq_calibration,
        dataset_path: *const c_char,
        tokenizer: *const ktq_tokenizer,
        opts: *const ktq_calibration_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_calibration_from_tokens(
        out: *mut *mut ktq_calibration,
        ids: *const i32,
        offsets: *const u64,
        count: usize,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_calibration_free(calibration: *mut ktq_calibration);
    pub fn ktq_calibration_info(
        samples: *mut usize,
        tokens: *mut u64,
        calibration: *const ktq_calibration,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}

// ---- gptq.h ------------------------------------------------------------

pub type ktq_act_order = c_int;
pub const KTQ_ACT_ORDER_NONE: ktq_act_order = 0;
pub const KTQ_ACT_ORDER_STATIC: ktq_act_order = 1;

pub type ktq_moe_hessian = c_int;
pub const KTQ_MOE_HESSIAN_BLEND: ktq_moe_hessian = 0;
pub const KTQ_MOE_HESSIAN_ALL: ktq_moe_hessian = 1;

pub const KTQ_GPTQ_OPTIONS_VERSION: c_uint = 2;
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ktq_gptq_options {
    pub version: c_uint,
    pub block_size: c_int,
    pub dampening_frac: f64,
    pub act_order: ktq_act_order,
    pub threads: c_int,
    pub device: ktq_device,
    pub cuda_device: c_int,
}

#[repr(C)]
pub struct ktq_gptq {
    _private: [u8; 0],
}

extern "C" {
    pub fn ktq_gptq_options_init(opts: *mut ktq_gptq_options, version: c_uint) -> ktq_status;
    pub fn ktq_gptq_new(out: *mut *mut ktq_gptq, in_features: u64, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_gptq_free(gptq: *mut ktq_gptq);
    pub fn ktq_gptq_add_batch(gptq: *mut ktq_gptq, x: *const f32, rows: u64, err: *mut *mut ktq_error) -> ktq_status;
    pub fn ktq_gptq_hessian(
        h: *mut f32,
        capacity: usize,
        rows_seen: *mut u64,
        gptq: *const ktq_gptq,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
    pub fn ktq_gptq_quantize(
        packed: *mut i32,
        packed_words: usize,
        scales: *mut c_void,
        scale_count: usize,
        zero_points: *mut i32,
        zero_point_words: usize,
        dequantized: *mut f32,
        loss: *mut f64,
        rtn_fallback: *mut c_int,
        gptq: *const ktq_gptq,
        weights: *const c_void,
        rows: u64,
        scheme: *const ktq_ct_scheme,
        opts: *const ktq_gptq_options,
        err: *mut *mut ktq_error,
    ) -> ktq_status;
}
