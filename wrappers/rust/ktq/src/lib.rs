//! Safe Rust API over libktq's C ABI (`ktq-sys`).
//!
//! ```no_run
//! let model = ktq::Model::open("DeepSeek-V3")?;
//! println!("{} layers, {} experts", model.info()?.num_layers, model.info()?.num_experts);
//! let mut writer = ktq::Writer::open(&model, "DeepSeek-V3-bf16", ktq::Format::HfBf16, &ktq::WriterOptions::default())?;
//! writer.write_all(&ktq::ConvertOptions::default(), |p| {
//!     eprintln!("{}/{} bytes", p.bytes_done, p.bytes_total);
//!     true // false cancels
//! })?;
//! # Ok::<(), ktq::Error>(())
//! ```
//!
//! Thread-safety follows the C headers: a [`Model`] may be read from many
//! threads at once (`Send + Sync`); a [`Writer`] is used by one thread at a
//! time (`Send`, not `Sync`). Every error carries the status and the message
//! of the call that failed.

use std::ffi::{c_int, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;

use ktq_sys as sys;

#[cfg(feature = "candle")]
pub mod candle;

/// The version of the libktq loaded at run time.
pub fn version() -> String {
    unsafe { CStr::from_ptr(sys::ktq_version()).to_string_lossy().into_owned() }
}

/// A failed call: the libktq status code and its message (naming the file
/// and tensor involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

/// libktq status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    Io,
    Format,
    Unsupported,
    NotFound,
    NoMemory,
    Cancelled,
    BufferTooSmall,
    Version,
    NoSpace,
    State,
    Internal,
    Other(i32),
}

impl Status {
    fn from_raw(s: c_int) -> Status {
        match s {
            sys::KTQ_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::KTQ_ERR_IO => Status::Io,
            sys::KTQ_ERR_FORMAT => Status::Format,
            sys::KTQ_ERR_UNSUPPORTED => Status::Unsupported,
            sys::KTQ_ERR_NOT_FOUND => Status::NotFound,
            sys::KTQ_ERR_NO_MEMORY => Status::NoMemory,
            sys::KTQ_ERR_CANCELLED => Status::Cancelled,
            sys::KTQ_ERR_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            sys::KTQ_ERR_VERSION => Status::Version,
            sys::KTQ_ERR_NO_SPACE => Status::NoSpace,
            sys::KTQ_ERR_STATE => Status::State,
            sys::KTQ_ERR_INTERNAL => Status::Internal,
            other => Status::Other(other),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.message, self.status)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn invalid(message: impl Into<String>) -> Error {
    Error { status: Status::InvalidArgument, message: message.into() }
}

/// Runs one C call with its own `ktq_error` slot and turns a failure into
/// an [`Error`].
fn call(f: impl FnOnce(*mut *mut sys::ktq_error) -> sys::ktq_status) -> Result<()> {
    let mut err: *mut sys::ktq_error = ptr::null_mut();
    let status = f(&mut err);
    if status == sys::KTQ_OK {
        return Ok(());
    }
    let message = unsafe {
        let m = if err.is_null() { sys::ktq_status_str(status) } else { sys::ktq_error_message(err) };
        let s = CStr::from_ptr(m).to_string_lossy().into_owned();
        sys::ktq_error_free(err);
        s
    };
    Err(Error { status: Status::from_raw(status), message })
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid(format!("{s:?} contains a NUL byte")))
}

fn path_cstring(p: &Path) -> Result<CString> {
    cstring(p.to_str().ok_or_else(|| invalid(format!("{} is not UTF-8", p.display())))?)
}

unsafe fn owned(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Element types tensors can be read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAs {
    F32,
    Bf16,
}

/// One routed expert's projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proj {
    Gate,
    Up,
    Down,
}

/// What a checkpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub architecture: String,
    pub model_type: String,
    pub family: String,
    pub notice: String,
    pub num_layers: i32,
    pub hidden_size: i32,
    pub num_experts: i32,
    pub experts_per_token: i32,
    pub moe_intermediate_size: i32,
    pub first_dense_layers: i32,
    pub num_moe_layers: i32,
    pub num_shared_experts: i32,
    pub source_dtype: String,
    pub fp8_block: Option<(i32, i32)>,
    pub num_tensors: usize,
    pub total_bytes: u64,
}

/// One stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub file: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub nbytes: u64,
    pub layer: Option<i32>,
}

/// An opened Hugging Face checkpoint (memory-mapped, read-only).
pub struct Model {
    raw: *mut sys::ktq_model,
}

// The C headers promise that every read-only call on a model may run on many
// threads at once, and that it may be freed from any thread.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

/// Options of [`Model::open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Worker threads for reads (0 = one per core).
    pub threads: usize,
    /// A kt-kernel output folder of this checkpoint: its routed experts, dequantized, are read
    /// instead of the checkpoint's ([`Model::perplexity`] then scores what kt-kernel computes with).
    pub kt_experts: Option<std::path::PathBuf>,
    /// A GGUF file of this checkpoint: every weight it holds, dequantized (llama's Q/K permutation
    /// undone), is read instead of the checkpoint's.
    pub gguf_weights: Option<std::path::PathBuf>,
}

impl Model {
    /// Opens a model folder (or one `.safetensors` file in it).
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::open_with_threads(path, 0)
    }

    /// As [`Model::open`], with `threads` workers for reads (0 = one per core).
    pub fn open_with_threads(path: impl AsRef<Path>, threads: usize) -> Result<Model> {
        Model::open_with(path, &OpenOptions { threads, ..Default::default() })
    }

    /// As [`Model::open`], with options.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Model> {
        let path = path_cstring(path.as_ref())?;
        let kt = options.kt_experts.as_deref().map(path_cstring).transpose()?;
        let gguf = options.gguf_weights.as_deref().map(path_cstring).transpose()?;
        let mut opts = std::mem::MaybeUninit::<sys::ktq_open_options>::uninit();
        let mut raw = ptr::null_mut();
        unsafe {
            sys::ktq_open_options_init(opts.as_mut_ptr(), sys::KTQ_OPEN_OPTIONS_VERSION);
            let mut opts = opts.assume_init();
            opts.threads = options.threads as c_int;
            if let Some(kt) = &kt {
                opts.kt_experts = kt.as_ptr();
            }
            if let Some(gguf) = &gguf {
                opts.gguf_weights = gguf.as_ptr();
            }
            call(|err| sys::ktq_open_model(&mut raw, path.as_ptr(), &opts, err))?;
        }
        Ok(Model { raw })
    }

    pub fn info(&self) -> Result<ModelInfo> {
        let mut i = std::mem::MaybeUninit::<sys::ktq_model_info>::uninit();
        unsafe {
            sys::ktq_model_info_init(i.as_mut_ptr(), sys::KTQ_MODEL_INFO_VERSION);
            let mut i = i.assume_init();
            call(|err| sys::ktq_model_get_info(&mut i, self.raw, err))?;
            Ok(ModelInfo {
                architecture: owned(i.architecture),
                model_type: owned(i.model_type),
                family: owned(sys::ktq_arch_family_name(i.family)),
                notice: owned(i.notice),
                num_layers: i.num_layers,
                hidden_size: i.hidden_size,
                num_experts: i.num_experts,
                experts_per_token: i.experts_per_token,
                moe_intermediate_size: i.moe_intermediate_size,
                first_dense_layers: i.first_dense_layers,
                num_moe_layers: i.num_moe_layers,
                num_shared_experts: i.num_shared_experts,
                source_dtype: owned(sys::ktq_dtype_name(i.source_dtype)),
                fp8_block: (i.fp8_block_rows > 0).then_some((i.fp8_block_rows, i.fp8_block_cols)),
                num_tensors: i.num_tensors,
                total_bytes: i.total_bytes,
            })
        }
    }

    fn tensor_at(&self, index: usize) -> Result<TensorInfo> {
        unsafe {
            let mut t = std::mem::MaybeUninit::<sys::ktq_tensor_info>::uninit();
            sys::ktq_tensor_info_init(t.as_mut_ptr(), sys::KTQ_TENSOR_INFO_VERSION);
            let mut t = t.assume_init();
            call(|err| sys::ktq_model_tensor_info(&mut t, self.raw, index, err))?;
            Ok(TensorInfo {
                name: owned(t.name),
                file: owned(t.file),
                dtype: owned(sys::ktq_dtype_name(t.dtype)),
                shape: t.shape[..t.ndim as usize].to_vec(),
                nbytes: t.nbytes,
                layer: (t.layer >= 0).then_some(t.layer),
            })
        }
    }

    /// Every tensor, in name order.
    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        let n = unsafe { sys::ktq_model_tensor_count(self.raw) };
        (0..n).map(|index| self.tensor_at(index)).collect()
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorInfo> {
        let cname = cstring(name)?;
        let mut index = 0usize;
        call(|err| unsafe { sys::ktq_model_find_tensor(&mut index, self.raw, cname.as_ptr(), err) })?;
        self.tensor_at(index)
    }

    fn numel_of(&self, name: &str) -> Result<usize> {
        Ok(self.tensor(name)?.shape.iter().product::<i64>() as usize)
    }

    /// Reads a tensor as F32 (FP8 blocks dequantized).
    pub fn read_tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.numel_of(name)?];
        self.read_tensor_into(name, ReadAs::F32, bytemuck_f32(&mut out))?;
        Ok(out)
    }

    /// Reads a tensor as BF16 bit patterns (round-to-nearest-even).
    pub fn read_tensor_bf16(&self, name: &str) -> Result<Vec<u16>> {
        let mut out = vec![0u16; self.numel_of(name)?];
        self.read_tensor_into(name, ReadAs::Bf16, bytemuck_u16(&mut out))?;
        Ok(out)
    }

    fn read_tensor_into(&self, name: &str, dtype: ReadAs, buf: &mut [u8]) -> Result<()> {
        let cname = cstring(name)?;
        call(|err| unsafe {
            sys::ktq_model_read_tensor(buf.as_mut_ptr().cast(), buf.len(), self.raw, cname.as_ptr(), raw_dtype(dtype), err)
        })
    }

    /// Shape (rows, cols) of one routed expert matrix.
    pub fn expert_shape(&self, layer: i32, expert: i32, proj: Proj) -> Result<(usize, usize)> {
        let (mut r, mut c) = (0i64, 0i64);
        call(|err| unsafe { sys::ktq_model_expert_shape(&mut r, &mut c, self.raw, layer, expert, raw_proj(proj), err) })?;
        Ok((r as usize, c as usize))
    }

    /// One routed expert matrix as F32, row-major, whatever the storage.
    pub fn read_expert_f32(&self, layer: i32, expert: i32, proj: Proj) -> Result<Vec<f32>> {
        let (r, c) = self.expert_shape(layer, expert, proj)?;
        let mut out = vec![0f32; r * c];
        let buf = bytemuck_f32(&mut out);
        call(|err| unsafe {
            sys::ktq_model_read_expert(buf.as_mut_ptr().cast(), buf.len(), self.raw, layer, expert, raw_proj(proj),
                                       sys::KTQ_DTYPE_F32, err)
        })?;
        Ok(out)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::ktq_model_free(self.raw) }
    }
}

fn bytemuck_f32(v: &mut [f32]) -> &mut [u8] {
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

fn bytemuck_u16(v: &mut [u16]) -> &mut [u8] {
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

fn raw_dtype(d: ReadAs) -> sys::ktq_dtype {
    match d {
        ReadAs::F32 => sys::KTQ_DTYPE_F32,
        ReadAs::Bf16 => sys::KTQ_DTYPE_BF16,
    }
}

fn raw_proj(p: Proj) -> sys::ktq_expert_proj {
    match p {
        Proj::Gate => sys::KTQ_PROJ_GATE,
        Proj::Up => sys::KTQ_PROJ_UP,
        Proj::Down => sys::KTQ_PROJ_DOWN,
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face checkpoint, every floating tensor BF16 (FP8 dequantized).
    HfBf16,
    /// kt-kernel's AMX INT4 expert layout (`convert_cpu_weights.py --quant-method int4`).
    KtAmxInt4,
    /// kt-kernel's AMX INT8 expert layout (`--quant-method int8`).
    KtAmxInt8,
    /// compressed-tensors `pack-quantized` (W4A16 / W8A16 for vLLM, SGLang,
    /// transformers), byte-identical to llm-compressor's RTN. Which modules:
    /// [`WriterOptions::targets`] / [`WriterOptions::ignore`].
    CompressedTensors(CtScheme),
    /// One GGUF file (llama.cpp, Candle) with weights of type `ty`; routed
    /// experts stacked (`ffn_gate_exps`), or one tensor per expert with
    /// `split_experts` (Candle's quantized_llama). The writer's `out_dir` is
    /// the file's path. Per-tensor types: [`WriterOptions::gguf_tensor_types`], mixtures such as
    /// Q4_K_M: [`WriterOptions::gguf_mix`].
    Gguf { ty: GgmlType, split_experts: bool },
    /// kt-kernel's AWQ expert layout: an AutoAWQ checkpoint's experts re-packed
    /// (`convert_cpu_weights.py --input-type awq --quant-method awq`).
    KtAwq,
}

/// A compressed-tensors integer weight scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtScheme {
    /// Bits per weight (4: W4A16, 8: W8A16; 2..8 accepted).
    pub bits: u8,
    /// Weights per scale along a row; -1 = one scale per output channel.
    pub group_size: i32,
    /// `false` = asymmetric, with zero points.
    pub symmetric: bool,
    /// `true`: the codes llm-compressor computes on a CPU (x / scale rounded to BF16 first);
    /// `false` (default): the codes it computes on a GPU (float32, its Triton kernel).
    pub dtype_rounding: bool,
    /// How each group's scale is chosen.
    pub observer: CtObserver,
}

/// How a compressed-tensors scheme chooses each group's scale and zero point
/// (`ktq_ct_observer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CtObserver {
    /// From the group's minimum and maximum (llm-compressor's default, same bytes).
    #[default]
    MinMax,
    /// The range, shrunk by up to 19 %, with the smallest sum of |error|^2.4
    /// (llm-compressor's "mse" observer); slower, usually more accurate.
    Mse,
}

impl CtScheme {
    /// int4, group 128, symmetric: compressed-tensors' W4A16 preset.
    pub fn w4a16() -> Self {
        CtScheme { bits: 4, group_size: 128, symmetric: true, dtype_rounding: false, observer: CtObserver::MinMax }
    }
    /// int8, group 128, symmetric: compressed-tensors' W8A16 preset.
    pub fn w8a16() -> Self {
        CtScheme { bits: 8, group_size: 128, symmetric: true, dtype_rounding: false, observer: CtObserver::MinMax }
    }
}

fn observer_raw(o: CtObserver) -> sys::ktq_ct_observer {
    match o {
        CtObserver::MinMax => sys::KTQ_CT_OBSERVER_MINMAX,
        CtObserver::Mse => sys::KTQ_CT_OBSERVER_MSE,
    }
}

/// Where an engine computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA device 0 (compressed-tensors only); same bytes as the CPU.
    Cuda,
}

/// Options of [`Writer::open`] (builder style).
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    pub max_shard_bytes: u64,
    pub overwrite: bool,
    pub resume: bool,
    pub keep_partial: bool,
    pub skip_aux_files: bool,
    /// kt formats: NUMA parts per expert (kt-kernel's `--threadpool-count`); 0 = 2.
    pub numa_parts: u32,
    /// kt formats: `_layer_L/_numa_P/*.kt` files instead of merged safetensors.
    pub loose_files: bool,
    /// Skip the per-layer fdatasync (resume stays exact after a killed process, not after a power loss).
    pub no_layer_sync: bool,
    /// Never fsync the weight files (no per-layer sync, none before the final names): complete for
    /// every reader once the conversion returns, but a power loss or OS crash may leave files that
    /// look complete and are not.
    pub no_sync: bool,
    /// compressed-tensors: modules to quantize ("Linear", exact names, "re:REGEX"); empty = "Linear".
    pub targets: Vec<String>,
    /// compressed-tensors: modules kept in high precision, same syntax; `None` = kt-kernel's defaults
    /// (lm_head, routers, attention, shared experts, DeepSeek's dense layers).
    pub ignore: Option<Vec<String>>,
    /// GGUF: per-tensor types as llama-quantize's `--tensor-type`, e.g.
    /// `"ffn_down_exps=Q6_K"`: the first rule whose regex is found in a
    /// weight's GGUF name gives its type.
    pub gguf_tensor_types: Vec<String>,
    /// GGUF: a mixture of types instead of one [`Format::Gguf`] `ty`: llama-quantize's file
    /// types ("Q4_K_M", "Q5_K_S", ...) with its per-tensor choices, or ktq's "MOE_Q4_K" (routed
    /// experts Q4_K, other weights Q8_0) and its siblings.
    pub gguf_mix: Option<String>,
    /// GGUF: llama.cpp's pre-tokenizer name (`tokenizer.ggml.pre`) to write instead of the one
    /// ktq derives from tokenizer.json (it refuses pre-tokenizers it does not recognise); written
    /// unchecked.
    pub gguf_tokenizer_pre: Option<String>,
    /// GGUF: an importance matrix (llama-imatrix's GGUF or legacy .dat file) to quantize with, as
    /// `llama-quantize --imatrix` (same bytes).
    pub gguf_imatrix: Option<std::path::PathBuf>,
    /// GGUF: routed tokens per expert to record (`ktq.routing.blk.N.expert_tokens`) from this
    /// routing_stats.json (written by the GPTQ engine); `None` = from a GGUF imatrix's counts.
    pub gguf_routing_stats: Option<std::path::PathBuf>,
    /// GGUF: record the SHA-256 of the source's files (`ktq.source.sha256`); reads the checkpoint once more.
    pub gguf_source_sha256: bool,
}

impl WriterOptions {
    pub fn gguf_routing_stats(mut self, path: impl AsRef<Path>) -> Self {
        self.gguf_routing_stats = Some(path.as_ref().to_path_buf());
        self
    }
    pub fn gguf_imatrix(mut self, path: impl AsRef<Path>) -> Self {
        self.gguf_imatrix = Some(path.as_ref().to_path_buf());
        self
    }
    pub fn gguf_tokenizer_pre(mut self, name: impl Into<String>) -> Self {
        self.gguf_tokenizer_pre = Some(name.into());
        self
    }
    pub fn gguf_mix(mut self, mix: impl Into<String>) -> Self {
        self.gguf_mix = Some(mix.into());
        self
    }
    pub fn gguf_tensor_types<S: Into<String>>(mut self, rules: impl IntoIterator<Item = S>) -> Self {
        self.gguf_tensor_types = rules.into_iter().map(Into::into).collect();
        self
    }
    pub fn no_sync(mut self, yes: bool) -> Self {
        self.no_sync = yes;
        self
    }
    pub fn max_shard_bytes(mut self, bytes: u64) -> Self {
        self.max_shard_bytes = bytes;
        self
    }
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }
    pub fn keep_partial(mut self, yes: bool) -> Self {
        self.keep_partial = yes;
        self
    }
    pub fn numa_parts(mut self, parts: u32) -> Self {
        self.numa_parts = parts;
        self
    }
    pub fn loose_files(mut self, yes: bool) -> Self {
        self.loose_files = yes;
        self
    }
    pub fn targets<S: Into<String>>(mut self, targets: impl IntoIterator<Item = S>) -> Self {
        self.targets = targets.into_iter().map(Into::into).collect();
        self
    }
    pub fn ignore<S: Into<String>>(mut self, ignore: impl IntoIterator<Item = S>) -> Self {
        self.ignore = Some(ignore.into_iter().map(Into::into).collect());
        self
    }
}

/// Options of a conversion run.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Worker threads, 0 = one per core.
    pub threads: usize,
    pub allow_non_finite: bool,
    pub device: Device,
}

/// Progress of a running conversion.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Decoder layer being worked on; `None` for the non-layer tensors.
    pub layer: Option<i32>,
    pub layers_total: i32,
    pub tensor: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// An output folder being written. Dropping it unfinished removes the
/// partial output (unless `keep_partial`).
pub struct Writer<'m> {
    raw: *mut sys::ktq_writer,
    model: &'m Model,
}

// One thread at a time may use a writer; it may move between threads.
unsafe impl Send for Writer<'_> {}

struct Callback<'a> {
    f: &'a mut dyn FnMut(&Progress) -> bool,
    panicked: bool,
}

unsafe extern "C" fn trampoline(p: *const sys::ktq_progress, payload: *mut c_void) -> c_int {
    let cb = &mut *(payload as *mut Callback);
    let p = &*p;
    let progress = Progress {
        layer: (p.layer >= 0).then_some(p.layer),
        layers_total: p.layers_total,
        tensor: owned(p.tensor),
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
    };
    // A panic must not unwind into C: it cancels the operation instead.
    match catch_unwind(AssertUnwindSafe(|| (cb.f)(&progress))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(_) => {
            cb.panicked = true;
            1
        }
    }
}

impl<'m> Writer<'m> {
    pub fn open(model: &'m Model, out_dir: impl AsRef<Path>, format: Format, opts: &WriterOptions) -> Result<Writer<'m>> {
        let dir = path_cstring(out_dir.as_ref())?;
        let mut raw = ptr::null_mut();
        unsafe {
            let mut o = std::mem::MaybeUninit::<sys::ktq_writer_options>::uninit();
            sys::ktq_writer_options_init(o.as_mut_ptr(), sys::KTQ_WRITER_OPTIONS_VERSION);
            let mut o = o.assume_init();
            o.max_shard_bytes = opts.max_shard_bytes;
            o.overwrite = opts.overwrite as c_int;
            o.resume = opts.resume as c_int;
            o.keep_partial = opts.keep_partial as c_int;
            o.copy_aux_files = (!opts.skip_aux_files) as c_int;
            o.numa_parts = opts.numa_parts as c_int;
            o.loose_files = opts.loose_files as c_int;
            o.no_layer_sync = opts.no_layer_sync as c_int;
            o.no_sync = opts.no_sync as c_int;
            let lines = |v: &[String]| cstring(&v.join("\n"));
            let targets = lines(&opts.targets)?;
            let ignore = opts.ignore.as_deref().map(lines).transpose()?;
            if !opts.targets.is_empty() {
                o.targets = targets.as_ptr();
            }
            if let Some(ignore) = &ignore {
                o.ignore = ignore.as_ptr();
            }
            let mix = opts.gguf_mix.as_deref().map(cstring).transpose()?;
            if let Some(mix) = &mix {
                o.gguf_mix = mix.as_ptr();
            }
            let imatrix = opts.gguf_imatrix.as_deref().map(path_cstring).transpose()?;
            if let Some(imatrix) = &imatrix {
                o.gguf_imatrix = imatrix.as_ptr();
            }
            o.gguf_source_sha256 = opts.gguf_source_sha256 as c_int;
            let routing = opts.gguf_routing_stats.as_deref().map(path_cstring).transpose()?;
            if let Some(routing) = &routing {
                o.gguf_routing_stats = routing.as_ptr();
            }
            let pre = opts.gguf_tokenizer_pre.as_deref().map(cstring).transpose()?;
            if let Some(pre) = &pre {
                o.gguf_tokenizer_pre = pre.as_ptr();
            }
            let tensor_types = lines(&opts.gguf_tensor_types)?;
            if !opts.gguf_tensor_types.is_empty() {
                o.gguf_tensor_types = tensor_types.as_ptr();
            }
            let f = match format {
                Format::HfBf16 => sys::KTQ_FORMAT_HF_BF16,
                Format::KtAmxInt4 => sys::KTQ_FORMAT_KT_AMXINT4,
                Format::KtAmxInt8 => sys::KTQ_FORMAT_KT_AMXINT8,
                Format::KtAwq => sys::KTQ_FORMAT_KT_AWQ,
                Format::CompressedTensors(scheme) => {
                    o.weight_bits = scheme.bits as c_int;
                    o.group_size = scheme.group_size;
                    o.asymmetric = (!scheme.symmetric) as c_int;
                    o.ct_rounding = if scheme.dtype_rounding { sys::KTQ_CT_ROUND_DTYPE } else { sys::KTQ_CT_ROUND_FP32 };
                    o.ct_observer = observer_raw(scheme.observer);
                    sys::KTQ_FORMAT_COMPRESSED_TENSORS
                }
                Format::Gguf { ty, split_experts } => {
                    o.gguf_type = ty.raw() as c_int;
                    o.gguf_split_experts = split_experts as c_int;
                    sys::KTQ_FORMAT_GGUF
                }
            };
            call(|err| sys::ktq_writer_open(&mut raw, model.raw, dir.as_ptr(), f, &o, err))?;
        }
        Ok(Writer { raw, model })
    }

    fn quantize_options(opts: &ConvertOptions, cb: Option<&mut Callback>) -> sys::ktq_quantize_options {
        unsafe {
            let mut q = std::mem::MaybeUninit::<sys::ktq_quantize_options>::uninit();
            sys::ktq_quantize_options_init(q.as_mut_ptr(), sys::KTQ_QUANTIZE_OPTIONS_VERSION);
            let mut q = q.assume_init();
            q.threads = opts.threads as c_int;
            q.allow_non_finite = opts.allow_non_finite as c_int;
            q.device = match opts.device {
                Device::Cpu => sys::KTQ_DEVICE_CPU,
                Device::Cuda => sys::KTQ_DEVICE_CUDA,
            };
            if let Some(cb) = cb {
                q.progress = Some(trampoline);
                q.payload = cb as *mut Callback as *mut c_void;
            }
            q
        }
    }

    /// Converts one decoder layer (`None` = the non-layer tensors).
    pub fn quantize_layer(&mut self, layer: Option<i32>, opts: &ConvertOptions) -> Result<()> {
        let q = Self::quantize_options(opts, None);
        let l = layer.unwrap_or(sys::KTQ_LAYER_GLOBALS);
        call(|err| unsafe { sys::ktq_quantize_layer(self.model.raw, l, &q, self.raw, err) })
    }

    /// Converts every layer not yet written, then finishes the output.
    /// `progress` returns `false` to cancel (the call then fails with
    /// [`Status::Cancelled`]).
    pub fn write_all(&mut self, opts: &ConvertOptions, mut progress: impl FnMut(&Progress) -> bool) -> Result<()> {
        let mut cb = Callback { f: &mut progress, panicked: false };
        let q = Self::quantize_options(opts, Some(&mut cb));
        let r = call(|err| unsafe { sys::ktq_write(self.model.raw, &q, self.raw, err) });
        if cb.panicked {
            panic!("the progress callback panicked; the conversion was cancelled");
        }
        r
    }

    /// [`Writer::write_all`] with the GPTQ engine (compressed-tensors formats):
    /// the calibration samples run through ktq's forward pass, and every
    /// quantized Linear is solved with GPTQ.
    pub fn write_all_gptq(&mut self, opts: &ConvertOptions, calibration: &Calibration, gptq: &GptqEngineOptions,
                          mut progress: impl FnMut(&Progress) -> bool) -> Result<()> {
        self.write_all_calibrated(opts, calibration, gptq.calibration_batch, gptq.max_cpu_memory, gptq.max_device_memory,
                                  &gptq.devices, &mut progress, |q| {
            q.engine = sys::KTQ_ENGINE_GPTQ;
            if let Some(d) = gptq.dampening_frac {
                q.dampening_frac = d;
            }
            if let Some(b) = gptq.block_size {
                q.gptq_block_size = b as c_int;
            }
            if gptq.natural_order {
                q.act_order = sys::KTQ_ACT_ORDER_NONE;
            }
            if gptq.moe_hessian_all {
                q.moe_hessian = sys::KTQ_MOE_HESSIAN_ALL;
            }
        })
    }

    /// [`Writer::write_all`] with the AWQ engine (compressed-tensors formats,
    /// usually [`CtScheme`] with `symmetric: false`, and GGUF): the
    /// calibration samples run through ktq's forward pass, per-channel scales
    /// are searched and folded into the model, then every quantized Linear is
    /// rounded to nearest.
    pub fn write_all_awq(&mut self, opts: &ConvertOptions, calibration: &Calibration, awq: &AwqEngineOptions,
                         mut progress: impl FnMut(&Progress) -> bool) -> Result<()> {
        self.write_all_calibrated(opts, calibration, awq.calibration_batch, awq.max_cpu_memory, awq.max_device_memory,
                                  &awq.devices, &mut progress, |q| {
            q.engine = sys::KTQ_ENGINE_AWQ;
            if let Some(g) = awq.grid {
                q.awq_grid = g as c_int;
            }
            q.awq_duo_scaling = (!awq.activations_only) as c_int;
            q.awq_clip = awq.clip as c_int;
            if awq.moe_hessian_all {
                q.moe_hessian = sys::KTQ_MOE_HESSIAN_ALL;
            }
        })
    }

    // The calibrated engines' run: calibration, batch, memory limits and CUDA
    // placement here, the engine and its own options set by `engine`.
    #[allow(clippy::too_many_arguments)]
    fn write_all_calibrated(&mut self, opts: &ConvertOptions, calibration: &Calibration, calibration_batch: usize,
                            max_cpu_memory: u64, max_device_memory: u64, devices: &[i32],
                            progress: &mut dyn FnMut(&Progress) -> bool,
                            engine: impl FnOnce(&mut sys::ktq_quantize_options)) -> Result<()> {
        let mut cb = Callback { f: progress, panicked: false };
        let mut q = Self::quantize_options(opts, Some(&mut cb));
        q.calibration = calibration.raw;
        engine(&mut q);
        if calibration_batch > 0 {
            q.calibration_batch = calibration_batch as c_int;
        }
        q.max_host_memory = max_cpu_memory;
        q.max_device_memory = max_device_memory;
        if !devices.is_empty() {
            q.devices = devices.as_ptr();
            q.device_count = devices.len();
        }
        let r = call(|err| unsafe { sys::ktq_write(self.model.raw, &q, self.raw, err) });
        if cb.panicked {
            panic!("the progress callback panicked; the conversion was cancelled");
        }
        r
    }

    /// Writes index and config and gives the files their final names.
    pub fn finish(&mut self) -> Result<()> {
        call(|err| unsafe { sys::ktq_writer_finish(self.raw, err) })
    }

    /// (payload bytes, files) this writer produces.
    pub fn plan(&self) -> Result<(u64, usize)> {
        let (mut b, mut f) = (0u64, 0usize);
        call(|err| unsafe { sys::ktq_writer_plan(&mut b, &mut f, self.raw, err) })?;
        Ok((b, f))
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        unsafe { sys::ktq_writer_free(self.raw) }
    }
}

/// ggml block types that [`quantize`] implements (bit-identical to ggml's
/// reference quantizers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl GgmlType {
    fn raw(self) -> sys::ktq_ggml_type {
        match self {
            GgmlType::F32 => sys::KTQ_GGML_F32,
            GgmlType::F16 => sys::KTQ_GGML_F16,
            GgmlType::Bf16 => sys::KTQ_GGML_BF16,
            GgmlType::Q4_0 => sys::KTQ_GGML_Q4_0,
            GgmlType::Q4_1 => sys::KTQ_GGML_Q4_1,
            GgmlType::Q5_0 => sys::KTQ_GGML_Q5_0,
            GgmlType::Q5_1 => sys::KTQ_GGML_Q5_1,
            GgmlType::Q8_0 => sys::KTQ_GGML_Q8_0,
            GgmlType::Q2K => sys::KTQ_GGML_Q2_K,
            GgmlType::Q3K => sys::KTQ_GGML_Q3_K,
            GgmlType::Q4K => sys::KTQ_GGML_Q4_K,
            GgmlType::Q5K => sys::KTQ_GGML_Q5_K,
            GgmlType::Q6K => sys::KTQ_GGML_Q6_K,
        }
    }

    /// (weights per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        unsafe { (sys::ktq_ggml_block_size(self.raw()), sys::ktq_ggml_type_size(self.raw())) }
    }
}

/// Quantizes `values` (a multiple of the block size) into ggml blocks.
pub fn quantize(values: &[f32], ty: GgmlType) -> Result<Vec<u8>> {
    let (block, size) = ty.block();
    let mut out = vec![0u8; values.len() / block.max(1) * size];
    call(|err| unsafe {
        sys::ktq_quantize_tensor(out.as_mut_ptr().cast(), out.len(), values.as_ptr(), values.len(), ty.raw(), err)
    })?;
    Ok(out)
}

/// Quantizes rows of `n_per_row` values with per-column `importance` (an imatrix's `n_per_row` values
/// for this weight, or one expert's slice), bit-identical to llama-quantize with that imatrix. Types
/// without an importance path in ggml (F32, F16, BF16, Q8_0) give [`quantize`]'s bytes.
pub fn quantize_with_importance(values: &[f32], n_per_row: usize, importance: &[f32], ty: GgmlType) -> Result<Vec<u8>> {
    if n_per_row == 0 || values.len() % n_per_row != 0 {
        return Err(invalid(format!("{} values are not whole rows of {n_per_row}", values.len())));
    }
    if importance.len() != n_per_row {
        return Err(invalid(format!("importance has {} values for rows of {n_per_row}", importance.len())));
    }
    let (block, size) = ty.block();
    let mut out = vec![0u8; values.len() / block.max(1) * size];
    call(|err| unsafe {
        sys::ktq_quantize_rows(out.as_mut_ptr().cast(), out.len(), values.as_ptr(), values.len() / n_per_row, n_per_row,
                               importance.as_ptr(), ty.raw(), err)
    })?;
    Ok(out)
}

/// A weight quantized with a compressed-tensors scheme: the tensors a
/// `pack-quantized` checkpoint stores for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtTensor {
    /// `weight_packed`, int32 [rows, ceil(cols * bits / 32)].
    pub packed: Vec<i32>,
    /// `weight_scale`, BF16 bits [rows, groups].
    pub scales: Vec<u16>,
    /// `weight_zero_point`, int32 [ceil(rows * bits / 32), groups]; empty when symmetric.
    pub zero_points: Vec<i32>,
}

fn ct_raw(scheme: CtScheme) -> sys::ktq_ct_scheme {
    unsafe {
        let mut s = std::mem::MaybeUninit::<sys::ktq_ct_scheme>::uninit();
        sys::ktq_ct_scheme_init(s.as_mut_ptr(), sys::KTQ_CT_SCHEME_VERSION);
        let mut s = s.assume_init();
        s.num_bits = scheme.bits as c_int;
        s.group_size = scheme.group_size;
        s.symmetric = scheme.symmetric as c_int;
        s.dtype = sys::KTQ_DTYPE_BF16;
        s.rounding = if scheme.dtype_rounding { sys::KTQ_CT_ROUND_DTYPE } else { sys::KTQ_CT_ROUND_FP32 };
        s.observer = observer_raw(scheme.observer);
        s
    }
}

fn ct_sizes(rows: u64, cols: u64, s: &sys::ktq_ct_scheme) -> Result<(usize, usize, usize)> {
    let (mut p, mut c, mut z) = (0usize, 0usize, 0usize);
    call(|err| unsafe { sys::ktq_ct_sizes(&mut p, &mut c, &mut z, rows, cols, s, err) })?;
    Ok((p, c, z))
}

/// Quantizes a BF16 weight [rows, cols] (raw bits, row-major) with a
/// compressed-tensors scheme, exactly as llm-compressor's RTN does.
pub fn ct_quantize_bf16(weights: &[u16], rows: u64, cols: u64, scheme: CtScheme) -> Result<CtTensor> {
    let s = ct_raw(scheme);
    let (p, c, z) = ct_sizes(rows, cols, &s)?;
    if weights.len() as u64 != rows * cols {
        return Err(invalid(format!("{} weights for a [{rows}, {cols}] matrix", weights.len())));
    }
    let mut t = CtTensor { packed: vec![0; p], scales: vec![0; c], zero_points: vec![0; z] };
    let zp = if z == 0 { ptr::null_mut() } else { t.zero_points.as_mut_ptr() };
    call(|err| unsafe {
        sys::ktq_ct_quantize(t.packed.as_mut_ptr(), p, t.scales.as_mut_ptr().cast(), c, zp, z, weights.as_ptr().cast(),
                             rows, cols, &s, err)
    })?;
    Ok(t)
}

/// The inverse of [`ct_quantize_bf16`], as compressed-tensors decompresses: BF16 bits.
pub fn ct_dequantize_bf16(t: &CtTensor, rows: u64, cols: u64, scheme: CtScheme) -> Result<Vec<u16>> {
    let s = ct_raw(scheme);
    let mut out = vec![0u16; (rows * cols) as usize];
    let zp = if t.zero_points.is_empty() { ptr::null() } else { t.zero_points.as_ptr() };
    call(|err| unsafe {
        sys::ktq_ct_dequantize(out.as_mut_ptr().cast(), t.packed.as_ptr(), t.packed.len(), t.scales.as_ptr().cast(),
                               t.scales.len(), zp, t.zero_points.len(), rows, cols, &s, err)
    })?;
    Ok(out)
}

/// The inverse of [`quantize`]: `n` floats out of `blocks`.
pub fn dequantize(blocks: &[u8], n: usize, ty: GgmlType) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    call(|err| unsafe {
        sys::ktq_dequantize_tensor(out.as_mut_ptr(), n, blocks.as_ptr().cast(), blocks.len(), ty.raw(), err)
    })?;
    Ok(out)
}

// ---- tokenizer, perplexity, GPTQ ----------------------------------------

/// A checkpoint's byte-level BPE tokenizer (its `tokenizer.json`), encoding as
/// Hugging Face `tokenizers` does.
pub struct Tokenizer {
    raw: *mut sys::ktq_tokenizer,
}

// ktq/text.h: encode may run on many threads at once; free from any thread.
unsafe impl Send for Tokenizer {}
unsafe impl Sync for Tokenizer {}

impl Tokenizer {
    /// Loads a `tokenizer.json`, or the one in a model folder.
    pub fn open(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path_cstring(path.as_ref())?;
        let mut raw = ptr::null_mut();
        call(|err| unsafe { sys::ktq_tokenizer_open(&mut raw, path.as_ptr(), err) })?;
        Ok(Tokenizer { raw })
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<i32>> {
        let mut count = 0usize;
        let mut err: *mut sys::ktq_error = ptr::null_mut();
        let status = unsafe {
            sys::ktq_tokenizer_encode(ptr::null_mut(), 0, &mut count, self.raw, text.as_ptr().cast(), text.len(), &mut err)
        };
        unsafe { sys::ktq_error_free(err) };
        if status == sys::KTQ_OK {
            return Ok(Vec::new());
        }
        let mut ids = vec![0i32; count];
        call(|err| unsafe {
            sys::ktq_tokenizer_encode(ids.as_mut_ptr(), ids.len(), &mut count, self.raw, text.as_ptr().cast(), text.len(),
                                      err)
        })?;
        Ok(ids)
    }
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        unsafe { sys::ktq_tokenizer_free(self.raw) }
    }
}

/// Result of [`Model::perplexity`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    pub perplexity: f64,
    pub mean_nll: f64,
    pub tokens_scored: u64,
    pub windows: u64,
}

impl Model {
    /// Perplexity of this model on `text` with ktq's native forward pass: the
    /// first `max_tokens` tokens (0 = all) as windows of `window` tokens.
    pub fn perplexity(&self, tokenizer: &Tokenizer, text: &str, window: usize, max_tokens: u64) -> Result<Perplexity> {
        let mut out = sys::ktq_eval_result::default();
        call(|err| unsafe {
            let mut o = std::mem::MaybeUninit::<sys::ktq_eval_options>::uninit();
            sys::ktq_eval_options_init(o.as_mut_ptr(), sys::KTQ_EVAL_OPTIONS_VERSION);
            let mut o = o.assume_init();
            o.window = window as c_int;
            o.max_tokens = max_tokens;
            sys::ktq_eval_perplexity(&mut out, self.raw, tokenizer.raw, text.as_ptr().cast(), text.len(), &o, err)
        })?;
        Ok(Perplexity { perplexity: out.perplexity, mean_nll: out.mean_nll, tokens_scored: out.tokens_scored,
                        windows: out.windows })
    }
}

/// GPTQ for one Linear of a pipeline's own forward pass: feed its inputs with
/// [`Gptq::add_batch`], then [`Gptq::quantize_bf16`].
pub struct Gptq {
    raw: *mut sys::ktq_gptq,
    in_features: usize,
}

// ktq/gptq.h: one object must not be used from two threads at once (&mut
// for add_batch enforces it); moving it between threads is fine.
unsafe impl Send for Gptq {}

/// What [`Gptq::quantize_bf16`] returns.
#[derive(Debug, Clone)]
pub struct GptqResult {
    pub tensor: CtTensor,
    /// The weights the codes stand for, as compressed-tensors decompresses them.
    pub dequantized: Vec<f32>,
    pub loss: f64,
    /// The damped Hessian was not positive definite: rounded to nearest instead.
    pub rtn_fallback: bool,
}

impl Gptq {
    pub fn new(in_features: usize) -> Result<Gptq> {
        let mut raw = ptr::null_mut();
        call(|err| unsafe { sys::ktq_gptq_new(&mut raw, in_features as u64, err) })?;
        Ok(Gptq { raw, in_features })
    }

    /// Adds input rows `x` ([rows, in_features], row-major) to the Hessian.
    pub fn add_batch(&mut self, x: &[f32]) -> Result<()> {
        if x.len() % self.in_features != 0 {
            return Err(invalid(format!("{} values are not whole rows of {}", x.len(), self.in_features)));
        }
        call(|err| unsafe { sys::ktq_gptq_add_batch(self.raw, x.as_ptr(), (x.len() / self.in_features) as u64, err) })
    }

    /// Rows added so far.
    pub fn rows_seen(&self) -> Result<u64> {
        let mut n = 0u64;
        call(|err| unsafe { sys::ktq_gptq_hessian(ptr::null_mut(), 0, &mut n, self.raw, err) })?;
        Ok(n)
    }

    /// Quantizes a BF16 weight [rows, in_features] (raw bits) with GPTQ;
    /// `dampening_frac` 0.01 and static act order are llm-compressor's defaults.
    pub fn quantize_bf16(&self, weights: &[u16], scheme: CtScheme, dampening_frac: f64, static_act_order: bool)
                         -> Result<GptqResult> {
        let cols = self.in_features as u64;
        if weights.len() as u64 % cols != 0 {
            return Err(invalid(format!("{} weights are not whole rows of {cols}", weights.len())));
        }
        let rows = weights.len() as u64 / cols;
        let s = ct_raw(scheme);
        let (p, c, z) = ct_sizes(rows, cols, &s)?;
        let mut t = CtTensor { packed: vec![0; p], scales: vec![0; c], zero_points: vec![0; z] };
        let mut deq = vec![0f32; weights.len()];
        let (mut loss, mut fallback) = (0f64, 0 as c_int);
        let zp = if z == 0 { ptr::null_mut() } else { t.zero_points.as_mut_ptr() };
        call(|err| unsafe {
            let mut o = std::mem::MaybeUninit::<sys::ktq_gptq_options>::uninit();
            sys::ktq_gptq_options_init(o.as_mut_ptr(), sys::KTQ_GPTQ_OPTIONS_VERSION);
            let mut o = o.assume_init();
            o.dampening_frac = dampening_frac;
            o.act_order = if static_act_order { sys::KTQ_ACT_ORDER_STATIC } else { sys::KTQ_ACT_ORDER_NONE };
            sys::ktq_gptq_quantize(t.packed.as_mut_ptr(), p, t.scales.as_mut_ptr().cast(), c, zp, z, deq.as_mut_ptr(),
                                   &mut loss, &mut fallback, self.raw, weights.as_ptr().cast(), rows, &s, &o, err)
        })?;
        Ok(GptqResult { tensor: t, dequantized: deq, loss, rtn_fallback: fallback != 0 })
    }
}

impl Drop for Gptq {
    fn drop(&mut self) {
        unsafe { sys::ktq_gptq_free(self.raw) }
    }
}

/// Options of the GPTQ engine in [`Writer::write_all_gptq`]; the defaults
/// are llm-compressor's.
#[derive(Debug, Clone, Default)]
pub struct GptqEngineOptions {
    /// Fraction of the mean Hessian diagonal added to it (`None` = 0.01;
    /// kt-kernel's convert_gpu_weights.py uses 0.1).
    pub dampening_frac: Option<f64>,
    /// Columns per lazy-update block (`None` = 128).
    pub block_size: Option<usize>,
    /// Quantize columns in their natural order instead of by descending
    /// Hessian diagonal ("static" act order).
    pub natural_order: bool,
    /// Routed experts' Hessians from every token with equal weight
    /// (llm-compressor's `moe_calibrate_all_experts`) instead of ktq's blend.
    pub moe_hessian_all: bool,
    /// Calibration samples per forward call (0 = 8).
    pub calibration_batch: usize,
    /// Host memory calibration may hold, in bytes (0 = no limit; the CLI's
    /// `--max-cpu-memory`): over half of it the activations move to a
    /// temporary file, and a layer that needs more on its own fails with
    /// [`Status::NoMemory`] before anything of it is written.
    pub max_cpu_memory: u64,
    /// With [`Device::Cuda`]: GPU memory the engine may hold (0 = 80 % of what is free).
    pub max_device_memory: u64,
    /// With [`Device::Cuda`]: CUDA devices to spread each layer's solve over (empty = device 0).
    pub devices: Vec<i32>,
}

/// Options of the AWQ engine in [`Writer::write_all_awq`]; the defaults are
/// llm-compressor's AWQModifier (grid 20, duo scaling), with ktq's blend of
/// routed and all tokens for routed experts.
#[derive(Debug, Clone, Default)]
pub struct AwqEngineOptions {
    /// Scale exponents tried per mapping (`None` = 20).
    pub grid: Option<usize>,
    /// Scales from activation magnitudes alone (AutoAWQ) instead of
    /// activations and weights (llm-compressor's duo scaling).
    pub activations_only: bool,
    /// AutoAWQ's clipping search after the scales (compressed-tensors only).
    pub clip: bool,
    /// Routed experts' up -> down search on every token alike (llm-compressor's
    /// `moe_calibrate_all_experts`) instead of ktq's blend.
    pub moe_hessian_all: bool,
    /// Calibration samples per forward call (0 = 8).
    pub calibration_batch: usize,
    /// As [`GptqEngineOptions::max_cpu_memory`].
    pub max_cpu_memory: u64,
    /// With [`Device::Cuda`]: GPU memory the engine may hold (0 = 80 % of what is free).
    pub max_device_memory: u64,
    /// With [`Device::Cuda`]: the CUDA device to run on (first entry; empty = device 0).
    pub devices: Vec<i32>,
}

/// Calibration samples for the GPTQ engine: token sequences from a dataset.
pub struct Calibration {
    raw: *mut sys::ktq_calibration,
}

// ktq/calibration.h: read-only after creation; shared by any threads.
unsafe impl Send for Calibration {}
unsafe impl Sync for Calibration {}

/// Options of [`Calibration::open`]; zeros are llm-compressor's defaults.
#[derive(Debug, Clone, Default)]
pub struct CalibrationOptions {
    /// Samples to draw (0 = 512).
    pub samples: usize,
    /// Tokens per sample (0 = 2048).
    pub max_sequence_length: usize,
    /// Seed of the deterministic sampling.
    pub seed: u64,
    /// JSONL datasets: the field holding the text (`None` = "text").
    pub text_field: Option<String>,
}

impl Calibration {
    /// Samples from `dataset` (plain text, or JSONL with a text field),
    /// tokenized with `tokenizer`.
    pub fn open(dataset: impl AsRef<Path>, tokenizer: &Tokenizer, opts: &CalibrationOptions) -> Result<Calibration> {
        let path = path_cstring(dataset.as_ref())?;
        let field = opts.text_field.as_deref().map(cstring).transpose()?;
        let mut raw = ptr::null_mut();
        call(|err| unsafe {
            let mut o = std::mem::MaybeUninit::<sys::ktq_calibration_options>::uninit();
            sys::ktq_calibration_options_init(o.as_mut_ptr(), sys::KTQ_CALIBRATION_OPTIONS_VERSION);
            let mut o = o.assume_init();
            if opts.samples > 0 {
                o.num_samples = opts.samples as c_int;
            }
            if opts.max_sequence_length > 0 {
                o.max_sequence_length = opts.max_sequence_length as c_int;
            }
            o.seed = opts.seed;
            if let Some(f) = &field {
                o.text_field = f.as_ptr();
            }
            sys::ktq_calibration_open(&mut raw, path.as_ptr(), tokenizer.raw, &o, err)
        })?;
        Ok(Calibration { raw })
    }

    /// Samples tokenized by the caller.
    pub fn from_tokens(samples: &[Vec<i32>]) -> Result<Calibration> {
        let ids: Vec<i32> = samples.iter().flatten().copied().collect();
        let mut offsets = Vec::with_capacity(samples.len() + 1);
        let mut at = 0u64;
        offsets.push(0);
        for s in samples {
            at += s.len() as u64;
            offsets.push(at);
        }
        let mut raw = ptr::null_mut();
        call(|err| unsafe {
            sys::ktq_calibration_from_tokens(&mut raw, ids.as_ptr(), offsets.as_ptr(), samples.len(), err)
        })?;
        Ok(Calibration { raw })
    }

    /// (samples, tokens in all samples).
    pub fn info(&self) -> Result<(usize, u64)> {
        let (mut samples, mut tokens) = (0usize, 0u64);
        call(|err| unsafe { sys::ktq_calibration_info(&mut samples, &mut tokens, self.raw, err) })?;
        Ok((samples, tokens))
    }
}

impl Drop for Calibration {
    fn drop(&mut self) {
        unsafe { sys::ktq_calibration_free(self.raw) }
    }
}

// ---- kt-kernel outputs ----------------------------------------------------

/// A kt-kernel AMX output folder (merged safetensors or loose `.kt` files)
/// opened for reading.
pub struct KtOutput {
    raw: *mut sys::ktq_kt_output,
}

// ktq/kt.h: reads may run on several threads at once.
unsafe impl Send for KtOutput {}
unsafe impl Sync for KtOutput {}

/// One NUMA part of one expert matrix in a [`KtOutput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtPart {
    /// "blk.L.ffn_gate_exps.E.numa.P".
    pub name: String,
    pub layer: i32,
    pub expert: i32,
    pub proj: Proj,
    /// NUMA part.
    pub part: i32,
    /// 4 or 8.
    pub bits: u32,
    /// The part's matrix [rows, cols], rows = output features.
    pub rows: usize,
    pub cols: usize,
    pub packed_bytes: usize,
}

impl KtOutput {
    pub fn open(dir: impl AsRef<Path>) -> Result<KtOutput> {
        let dir = path_cstring(dir.as_ref())?;
        let mut raw = ptr::null_mut();
        call(|err| unsafe { sys::ktq_kt_output_open(&mut raw, dir.as_ptr(), err) })?;
        Ok(KtOutput { raw })
    }

    /// `true` for merged safetensors, `false` for loose `.kt` files.
    pub fn is_merged(&self) -> bool {
        unsafe { sys::ktq_kt_output_is_merged(self.raw) != 0 }
    }

    pub fn parts(&self) -> Result<Vec<KtPart>> {
        let n = unsafe { sys::ktq_kt_output_part_count(self.raw) };
        (0..n).map(|i| self.part(i)).collect()
    }

    pub fn part(&self, index: usize) -> Result<KtPart> {
        let mut i = std::mem::MaybeUninit::<sys::ktq_kt_part_info>::uninit();
        unsafe { sys::ktq_kt_part_info_init(i.as_mut_ptr(), sys::KTQ_KT_PART_INFO_VERSION) };
        let mut i = unsafe { i.assume_init() };
        call(|err| unsafe { sys::ktq_kt_output_part(&mut i, self.raw, index, err) })?;
        let proj = match i.proj {
            sys::KTQ_PROJ_GATE => Proj::Gate,
            sys::KTQ_PROJ_UP => Proj::Up,
            _ => Proj::Down,
        };
        Ok(KtPart {
            name: unsafe { owned(i.name) },
            layer: i.layer,
            expert: i.expert,
            proj,
            part: i.part,
            bits: if i.method == sys::KTQ_FORMAT_KT_AMXINT4 { 4 } else { 8 },
            rows: i.rows as usize,
            cols: i.cols as usize,
            packed_bytes: i.packed_bytes as usize,
        })
    }

    /// The packed weight bytes (kt-kernel's AMX layout) and the float32
    /// per-row scales of part `index`.
    pub fn read(&self, index: usize) -> Result<(Vec<u8>, Vec<f32>)> {
        let p = self.part(index)?;
        let (mut packed, mut scales) = (vec![0u8; p.packed_bytes], vec![0f32; p.rows]);
        call(|err| unsafe {
            sys::ktq_kt_output_read(packed.as_mut_ptr().cast(), packed.len(), scales.as_mut_ptr(), scales.len(),
                                    self.raw, index, err)
        })?;
        Ok((packed, scales))
    }

    /// The part's weights as the codes stand for them (code × row scale), [rows, cols].
    pub fn dequantize(&self, index: usize) -> Result<Vec<f32>> {
        let p = self.part(index)?;
        let mut out = vec![0f32; p.rows * p.cols];
        call(|err| unsafe { sys::ktq_kt_output_dequantize(out.as_mut_ptr(), out.len(), self.raw, index, err) })?;
        Ok(out)
    }
}

impl Drop for KtOutput {
    fn drop(&mut self) {
        unsafe { sys::ktq_kt_output_free(self.raw) }
    }
}

/// Merges loose `.kt` files (`loose_dir`) into kt-kernel's merged
/// safetensors in `out_dir` (kt-kernel's merge_cpu_weights.py). With `model`,
/// the checkpoint they came from, its other tensors, config and tokenizer are
/// added too: the files a merged conversion writes, byte for byte.
pub fn kt_merge(out_dir: impl AsRef<Path>, loose_dir: impl AsRef<Path>, model: Option<&Model>, overwrite: bool)
                -> Result<()> {
    let out = path_cstring(out_dir.as_ref())?;
    let loose = path_cstring(loose_dir.as_ref())?;
    call(|err| unsafe {
        let mut o = std::mem::MaybeUninit::<sys::ktq_writer_options>::uninit();
        sys::ktq_writer_options_init(o.as_mut_ptr(), sys::KTQ_WRITER_OPTIONS_VERSION);
        let mut o = o.assume_init();
        o.overwrite = overwrite as c_int;
        sys::ktq_kt_merge(out.as_ptr(), loose.as_ptr(), model.map_or(ptr::null(), |m| m.raw as *const _), &o, err)
    })
}

// ---- system -----------------------------------------------------------------

/// What this machine offers ktq's engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    pub numa_nodes: u32,
    /// Physical cores.
    pub cores: u32,
    /// Hardware threads.
    pub pus: u32,
    pub avx2: bool,
    pub avx512f: bool,
    pub avx512_vnni: bool,
    pub avx512_bf16: bool,
    pub amx_tile: bool,
    pub amx_int8: bool,
    pub amx_bf16: bool,
    /// libktq was built with CUDA.
    pub cuda_built: bool,
    pub cuda_devices: u32,
    pub cpu_model: String,
    /// Name of CUDA device 0, or "".
    pub cuda_device0: String,
}

/// The CPU (cores, NUMA nodes, AVX-512/AMX) and CUDA devices as libktq sees them.
pub fn system_info() -> Result<SystemInfo> {
    let mut i = std::mem::MaybeUninit::<sys::ktq_system_info>::uninit();
    unsafe { sys::ktq_system_info_init(i.as_mut_ptr(), sys::KTQ_SYSTEM_INFO_VERSION) };
    let mut i = unsafe { i.assume_init() };
    call(|err| unsafe { sys::ktq_system_get_info(&mut i, err) })?;
    let text = |c: &[std::ffi::c_char; 128]| unsafe { std::ffi::CStr::from_ptr(c.as_ptr()) }.to_string_lossy().into_owned();
    Ok(SystemInfo {
        numa_nodes: i.numa_nodes as u32,
        cores: i.cores as u32,
        pus: i.pus as u32,
        avx2: i.avx2 != 0,
        avx512f: i.avx512f != 0,
        avx512_vnni: i.avx512_vnni != 0,
        avx512_bf16: i.avx512_bf16 != 0,
        amx_tile: i.amx_tile != 0,
        amx_int8: i.amx_int8 != 0,
        amx_bf16: i.amx_bf16 != 0,
        cuda_built: i.cuda_built != 0,
        cuda_devices: i.cuda_devices as u32,
        cpu_model: text(&i.cpu_model),
        cuda_device0: text(&i.cuda_device0),
    })
}
