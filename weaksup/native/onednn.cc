/* The oneDNN CPU training path, as XLA FFI custom calls for JAX on CPU: NHWC convolution
 * (forward, backward-data, backward-weights), training-mode batch normalisation fused with
 * the ReLU and residual add that follow it (forward and backward), and a max pool.
 *
 * XLA:CPU runs the small-channel convolutions of the CPU models at about a third of
 * oneDNN's speed; these handlers hand them to oneDNN's JIT kernels instead.  Activations
 * stay NHWC (oneDNN's "nhwc" tag), so no layout change happens around the call; the
 * kernel arrives in the model's HWIO layout, grouped as flax's
 * nn.Conv(feature_group_count=G) stores it, (KH, KW, Cin / G, Cout), and is reordered to
 * (or, for the weight gradient, from) the blocked layout oneDNN picks.
 *
 * Creating a primitive (JIT code generation) costs milliseconds, so primitives are cached
 * per shape.  Calls are serialised by one mutex: each call uses every OpenMP thread, and
 * two concurrent calls on a 2-core machine would only oversubscribe it.  Built by
 * `python -m weaksup onednn build` (weaksup/models/onednn.py).
 *
 * Batch norm is here because XLA:CPU runs its bfloat16 statistics, normalisation and
 * gradient as generic loops that cost about as much as the convolutions themselves; the
 * max pool at the end (plain loops, no oneDNN) for the same reason: XLA:CPU's max-pool
 * gradient is slower than the convolutions around it.
 *
 * Written against oneDNN 3 (the onednn-cpu-gomp wheel that set-up installs).
 */
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum Kind { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Shape {
  int64_t n, h, w, c;      // input (NHWC)
  int64_t oh, ow, oc;      // output
  int64_t kh, kw, groups;  // kernel
  int64_t sh, sw, pt, pl, pb, pr;
  int kind;
  int bf16;
  auto key() const {
    return std::make_tuple(n, h, w, c, oh, ow, oc, kh, kw, groups, sh, sw, pt, pl, pb, pr,
                           kind, bf16);
  }
  bool operator<(const Shape& o) const { return key() < o.key(); }
};

struct Entry {
  dnnl::primitive prim;
  memory::desc src, weights, dst;  // as the primitive wants them
  memory::desc user_weights;       // the model's HWIO (grouped) layout
  memory::desc scratch;
  bool reorder = false;            // weights layout differs from the model's
  dnnl::reorder weights_reorder;   // user -> primitive (or primitive -> user for kBackwardWeights)
  std::string impl;
};

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

std::mutex& lock() {
  static std::mutex mu;
  return mu;
}

memory::desc user_weights_desc(const Shape& s, memory::data_type dt) {
  const int64_t icg = s.c / s.groups, ocg = s.oc / s.groups;
  // HWIO with the output channels group-major: element [h][w][i][g * ocg + o].
  if (s.groups == 1) {
    return memory::desc({s.oc, s.c, s.kh, s.kw}, dt, {1, s.oc, s.kw * s.c * s.oc, s.c * s.oc});
  }
  return memory::desc({s.groups, ocg, icg, s.kh, s.kw}, dt,
                      {ocg, 1, s.oc, s.kw * icg * s.oc, icg * s.oc});
}

memory::dims weights_dims(const Shape& s) {
  if (s.groups == 1) return {s.oc, s.c, s.kh, s.kw};
  return {s.groups, s.oc / s.groups, s.c / s.groups, s.kh, s.kw};
}

std::unique_ptr<Entry> create(const Shape& s) {
  auto& eng = engine();
  const auto dt = s.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const memory::desc src({s.n, s.c, s.h, s.w}, dt, memory::format_tag::nhwc);
  const memory::desc dst({s.n, s.oc, s.oh, s.ow}, dt, memory::format_tag::nhwc);
  const memory::desc any_weights(weights_dims(s), dt, memory::format_tag::any);
  const memory::dims strides{s.sh, s.sw}, pad_l{s.pt, s.pl}, pad_r{s.pb, s.pr};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  auto e = std::make_unique<Entry>();
  e->user_weights = user_weights_desc(s, dt);
  // forward_training also for the forward pass itself: its layouts then match those of the
  // backward primitives, whose hint it is.
  dnnl::convolution_forward::primitive_desc fwd_pd(eng, dnnl::prop_kind::forward_training,
                                                   dnnl::algorithm::convolution_direct, src, any_weights,
                                                   dst, strides, pad_l, pad_r, attr);
  if (s.kind == kForward) {
    e->prim = dnnl::convolution_forward(fwd_pd);
    e->weights = fwd_pd.weights_desc();
    e->scratch = fwd_pd.scratchpad_desc();
    e->impl = fwd_pd.impl_info_str();
  } else if (s.kind == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(eng, dnnl::algorithm::convolution_direct, src,
                                                       any_weights, dst, strides, pad_l, pad_r, fwd_pd, attr);
    e->prim = dnnl::convolution_backward_data(pd);
    e->weights = pd.weights_desc();
    e->scratch = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(eng, dnnl::algorithm::convolution_direct, src,
                                                          any_weights, dst, strides, pad_l, pad_r, fwd_pd, attr);
    e->prim = dnnl::convolution_backward_weights(pd);
    e->weights = pd.diff_weights_desc();
    e->scratch = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
  }
  e->src = src;
  e->dst = dst;
  e->reorder = e->weights != e->user_weights;
  if (e->reorder) {
    e->weights_reorder = s.kind == kBackwardWeights
                             ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->weights, eng, e->user_weights))
                             : dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->user_weights, eng, e->weights));
  }
  return e;
}

Entry& cached(const Shape& s) {
  static std::map<Shape, std::unique_ptr<Entry>> cache;
  auto it = cache.find(s);
  if (it == cache.end()) it = cache.emplace(s, create(s)).first;
  return *it->second;
}

// Grown on demand and reused: scratchpads and reordered weights are small (kilobytes to a
// few megabytes) and every call holds the mutex while it uses them.
void* buffer(std::vector<char>& buf, size_t bytes) {
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

// Runs one convolution: `a` and `b` are the call's two inputs and `out` its result, in the
// order of `kind` (forward: x, w -> y; backward-data: dy, w -> dx; backward-weights: x, dy -> dw).
void run(const Shape& s, void* a, void* b, void* out) {
  static std::vector<char> scratch_buf, weights_buf;
  std::lock_guard<std::mutex> guard(lock());
  Entry& e = cached(s);
  auto& eng = engine();
  static dnnl::stream strm(eng);
  memory scratch(e.scratch, eng, buffer(scratch_buf, e.scratch.get_size()));
  void* weights_ptr = s.kind == kForward ? b : (s.kind == kBackwardData ? b : out);
  memory user_w(e.user_weights, eng, weights_ptr);
  memory prim_w = e.reorder ? memory(e.weights, eng, buffer(weights_buf, e.weights.get_size()))
                            : user_w;
  if (e.reorder && s.kind != kBackwardWeights) {
    e.weights_reorder.execute(strm, user_w, prim_w);
  }
  if (s.kind == kForward) {
    memory src(e.src, eng, a), dst(e.dst, eng, out);
    e.prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, prim_w}, {DNNL_ARG_DST, dst},
                          {DNNL_ARG_SCRATCHPAD, scratch}});
  } else if (s.kind == kBackwardData) {
    memory diff_dst(e.dst, eng, a), diff_src(e.src, eng, out);
    e.prim.execute(strm, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, prim_w},
                          {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_SCRATCHPAD, scratch}});
  } else {
    memory src(e.src, eng, a), diff_dst(e.dst, eng, b);
    e.prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                          {DNNL_ARG_DIFF_WEIGHTS, prim_w}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (e.reorder) e.weights_reorder.execute(strm, prim_w, user_w);
  }
  strm.wait();
}

ffi::Error check_dtype(ffi::DataType t, int* bf16) {
  if (t == ffi::DataType::F32) {
    *bf16 = 0;
  } else if (t == ffi::DataType::BF16) {
    *bf16 = 1;
  } else {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "onednn_conv: float32 or bfloat16 only");
  }
  return ffi::Error::Success();
}

// x: (N, H, W, C) and y: (N, OH, OW, OC) give the activation shapes whatever the kind.
ffi::Error call(int kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                ffi::Span<const int64_t> x, ffi::Span<const int64_t> y, int64_t kh, int64_t kw,
                int64_t groups, int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t pb,
                int64_t pr) {
  Shape s{x[0], x[1], x[2], x[3], y[1], y[2], y[3], kh, kw, groups, sh, sw, pt, pl, pb, pr,
          kind, 0};
  if (auto err = check_dtype(a.element_type(), &s.bf16); err.failure()) return err;
  if (a.element_type() != b.element_type() || a.element_type() != out->element_type()) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "onednn_conv: mixed dtypes");
  }
  try {
    run(s, a.untyped_data(), b.untyped_data(), out->untyped_data());
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("onednn_conv: ") + e.what());
  }
  return ffi::Error::Success();
}

template <int K>
ffi::Error call_kind(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                     ffi::Span<const int64_t> x, ffi::Span<const int64_t> y, int64_t kh,
                     int64_t kw, int64_t groups, int64_t sh, int64_t sw, int64_t pt,
                     int64_t pl, int64_t pb, int64_t pr) {
  return call(K, a, b, out, x, y, kh, kw, groups, sh, sw, pt, pl, pb, pr);
}

auto binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::AnyBuffer>()
      .Ret<ffi::AnyBuffer>()
      .Attr<ffi::Span<const int64_t>>("x_shape")
      .Attr<ffi::Span<const int64_t>>("y_shape")
      .Attr<int64_t>("kh")
      .Attr<int64_t>("kw")
      .Attr<int64_t>("groups")
      .Attr<int64_t>("sh")
      .Attr<int64_t>("sw")
      .Attr<int64_t>("pt")
      .Attr<int64_t>("pl")
      .Attr<int64_t>("pb")
      .Attr<int64_t>("pr");
}


/* Max pooling (NHWC, square window, -inf padding) with the gradient semantics of XLA's
 * select-and-scatter, so results equal flax's nn.max_pool bit for bit: the gradient of
 * each output goes to the first maximal element of its window in row-major order (a
 * padded position counts as -inf), and each input position sums what it receives in
 * output row-major order, rounding to the buffer's dtype after every add as XLA does.
 * Plain loops over the contiguous channel axis, which the compiler vectorises; the
 * forward pass also writes each output's window tap (int8) for the backward pass. */

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) {
  uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) {  // round to nearest even, as XLA
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    p[i] = static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
    return;
  }
  bits += 0x7fffu + ((bits >> 16) & 1u);
  p[i] = static_cast<uint16_t>(bits >> 16);
}

struct PoolShape {
  int64_t n, h, w, c, oh, ow, k, s, p;
};

// One tap of one window over all channels: branch-free (masks, not jumps), so it
// vectorises; with jumps the compares of real activations mispredict about half the time.
template <typename T>
inline void take_max(const T* __restrict__ src, float* __restrict__ best, int32_t* __restrict__ first,
                     int32_t here, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) {
    const float v = load(src, c);
    const int32_t more = -static_cast<int32_t>(v > best[c]);  // a tie keeps the earlier tap
    best[c] = v > best[c] ? v : best[c];
    first[c] = (here & more) | (first[c] & ~more);
  }
}

template <typename T>
void pool_forward(const PoolShape& d, const T* x, T* y, int8_t* tap) {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> best(d.c);
  std::vector<int32_t> first(d.c);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t i = 0; i < d.oh; ++i)
      for (int64_t j = 0; j < d.ow; ++j) {
        // A padded tap is -inf: it never beats an earlier tap, and as the first tap it
        // stays the start unless a later one is greater, as -inf padding does in XLA.
        std::fill(best.begin(), best.end(), ninf);
        std::fill(first.begin(), first.end(), 0);
        for (int64_t ki = 0; ki < d.k; ++ki)
          for (int64_t kj = 0; kj < d.k; ++kj) {
            const int64_t hi = i * d.s + ki - d.p, wj = j * d.s + kj - d.p;
            if (hi < 0 || hi >= d.h || wj < 0 || wj >= d.w) continue;
            take_max(x + ((n * d.h + hi) * d.w + wj) * d.c, best.data(), first.data(),
                     static_cast<int32_t>(ki * d.k + kj), d.c);
          }
        const int64_t o = ((n * d.oh + i) * d.ow + j) * d.c;
        for (int64_t c = 0; c < d.c; ++c) {
          store(y, o + c, best[c]);
          tap[o + c] = static_cast<int8_t>(first[c]);
        }
      }
}

template <typename T>
void pool_backward(const PoolShape& d, const T* g, const int8_t* tap, T* dx) {
  std::memset(dx, 0, sizeof(T) * d.n * d.h * d.w * d.c);
  std::vector<int64_t> base(d.k * d.k);  // where each tap of the window starts; -1: padding
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t i = 0; i < d.oh; ++i)
      for (int64_t j = 0; j < d.ow; ++j) {
        for (int64_t ki = 0; ki < d.k; ++ki)
          for (int64_t kj = 0; kj < d.k; ++kj) {
            const int64_t hi = i * d.s + ki - d.p, wj = j * d.s + kj - d.p;
            const bool inside = hi >= 0 && hi < d.h && wj >= 0 && wj < d.w;
            base[ki * d.k + kj] = inside ? ((n * d.h + hi) * d.w + wj) * d.c : -1;
          }
        const int64_t o = ((n * d.oh + i) * d.ow + j) * d.c;
        for (int64_t c = 0; c < d.c; ++c) {
          const int64_t b = base[tap[o + c]];
          if (b < 0) continue;  // a padded -inf won: the gradient falls off the edge
          store(dx, b + c, load(dx, b + c) + load(g, o + c));
        }
      }
}

PoolShape pool_shape(ffi::Span<const int64_t> x, int64_t k, int64_t s, int64_t p) {
  return PoolShape{x[0], x[1], x[2], x[3], (x[1] + 2 * p - k) / s + 1, (x[2] + 2 * p - k) / s + 1,
                   k, s, p};
}

ffi::Error max_pool_fwd(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y,
                        ffi::Result<ffi::Buffer<ffi::S8>> tap, int64_t k, int64_t s, int64_t p) {
  int bf16 = 0;
  if (auto err = check_dtype(x.element_type(), &bf16); err.failure()) return err;
  if (k * k > 127) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "max_pool: window over 11x11");
  const PoolShape d = pool_shape(x.dimensions(), k, s, p);
  if (bf16) {
    pool_forward(d, static_cast<const uint16_t*>(x.untyped_data()),
                 static_cast<uint16_t*>(y->untyped_data()), tap->typed_data());
  } else {
    pool_forward(d, static_cast<const float*>(x.untyped_data()),
                 static_cast<float*>(y->untyped_data()), tap->typed_data());
  }
  return ffi::Error::Success();
}

ffi::Error max_pool_bwd(ffi::AnyBuffer g, ffi::Buffer<ffi::S8> tap, ffi::Result<ffi::AnyBuffer> dx,
                        int64_t k, int64_t s, int64_t p) {
  int bf16 = 0;
  if (auto err = check_dtype(g.element_type(), &bf16); err.failure()) return err;
  const PoolShape d = pool_shape(dx->dimensions(), k, s, p);
  if (bf16) {
    pool_backward(d, static_cast<const uint16_t*>(g.untyped_data()), tap.typed_data(),
                  static_cast<uint16_t*>(dx->untyped_data()));
  } else {
    pool_backward(d, static_cast<const float*>(g.untyped_data()), tap.typed_data(),
                  static_cast<float*>(dx->untyped_data()));
  }
  return ffi::Error::Success();
}

/* Batch normalisation in training mode, with batch statistics, alone (kPlain) or fused
 * with the ReLU that follows it (kRelu).  (oneDNN 3 also names a fused residual add and
 * ReLU, but has no CPU kernel for it.)  Statistics are float32 whatever the data
 * type, as are scale and shift.  `groups` > 1 normalises each of that many consecutive
 * slices of the batch with its own statistics (per-device batch norm); the slices are
 * separate primitive runs, so mean and variance come out (groups, C) and so do the scale
 * and shift gradients, which the caller sums.  The ReLU's mask travels from the forward to
 * the backward pass in oneDNN's workspace (a bit per element), whose size
 * weaksup_onednn_bn_workspace reports so that JAX can allocate it. */

enum Act { kPlain = 0, kRelu = 1 };

struct BnShape {
  int64_t n, h, w, c;  // one group's slice
  int64_t act;
  int bf16;
  float eps;
  auto key() const { return std::make_tuple(n, h, w, c, act, bf16, eps); }
  bool operator<(const BnShape& o) const { return key() < o.key(); }
};

struct BnEntry {
  dnnl::batch_normalization_forward fwd;
  dnnl::batch_normalization_backward bwd;
  memory::desc data, stat, workspace, fwd_scratch, bwd_scratch;
  std::string impl;  // "forward kernel / backward kernel"
};

std::unique_ptr<BnEntry> create_bn(const BnShape& s) {
  auto& eng = engine();
  const auto dt = s.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto e = std::make_unique<BnEntry>();
  e->data = memory::desc({s.n, s.c, s.h, s.w}, dt, memory::format_tag::nhwc);
  e->stat = memory::desc({s.c}, memory::data_type::f32, memory::format_tag::a);
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (s.act == kRelu) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::batch_normalization_forward::primitive_desc fwd_pd(eng, dnnl::prop_kind::forward_training, e->data,
                                                           e->data, s.eps, flags, attr);
  dnnl::batch_normalization_backward::primitive_desc bwd_pd(eng, dnnl::prop_kind::backward, e->data, e->data,
                                                            e->data, s.eps, flags, fwd_pd, attr);
  e->fwd = dnnl::batch_normalization_forward(fwd_pd);
  e->bwd = dnnl::batch_normalization_backward(bwd_pd);
  e->workspace = fwd_pd.workspace_desc();
  e->fwd_scratch = fwd_pd.scratchpad_desc();
  e->bwd_scratch = bwd_pd.scratchpad_desc();
  e->impl = std::string(fwd_pd.impl_info_str()) + " / " + bwd_pd.impl_info_str();
  return e;
}

BnEntry& cached_bn(const BnShape& s) {
  static std::map<BnShape, std::unique_ptr<BnEntry>> cache;
  auto it = cache.find(s);
  if (it == cache.end()) it = cache.emplace(s, create_bn(s)).first;
  return *it->second;
}

char* at(void* p, size_t offset) { return static_cast<char*>(p) + offset; }

ffi::Error bn_shape(ffi::AnyBuffer x, int64_t groups, int64_t act, float eps, BnShape* s) {
  auto d = x.dimensions();
  if (d.size() != 4 || groups < 1 || d[0] % groups || act < kPlain || act > kRelu) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "onednn batch_norm: NHWC input, batch divisible by groups");
  }
  *s = BnShape{d[0] / groups, d[1], d[2], d[3], act, 0, eps};
  return check_dtype(x.element_type(), &s->bf16);
}

// Runs the forward or the backward primitive once per batch group under the library's
// lock; `group_args(e, g)` gives group g's arguments, all but the scratchpad.
template <typename GroupArgs>
ffi::Error run_bn(ffi::AnyBuffer x, int64_t groups, int64_t act, float eps, bool backward,
                  GroupArgs group_args) {
  BnShape s;
  if (auto err = bn_shape(x, groups, act, eps, &s); err.failure()) return err;
  try {
    static std::vector<char> scratch_buf;
    std::lock_guard<std::mutex> guard(lock());
    BnEntry& e = cached_bn(s);
    static dnnl::stream strm(engine());
    const memory::desc& scratch_desc = backward ? e.bwd_scratch : e.fwd_scratch;
    memory scratch(scratch_desc, engine(), buffer(scratch_buf, scratch_desc.get_size()));
    for (int64_t g = 0; g < groups; ++g) {
      std::unordered_map<int, memory> args = group_args(e, g);
      args[DNNL_ARG_SCRATCHPAD] = scratch;
      if (act == kPlain) args.erase(DNNL_ARG_WORKSPACE);
      if (backward) {
        e.bwd.execute(strm, args);
      } else {
        e.fwd.execute(strm, args);
      }
    }
    strm.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("onednn batch_norm: ") + err.what());
  }
  return ffi::Error::Success();
}

// Group g's slice of an activation, statistic or workspace buffer.
memory slice(const memory::desc& d, void* base, int64_t g) {
  return memory(d, engine(), at(base, g * d.get_size()));
}

// Forward: x -> y, mean and var (groups, C), workspace.
ffi::Error bn_fwd(ffi::AnyBuffer x, ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> shift,
                  ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::Buffer<ffi::F32>> mean,
                  ffi::Result<ffi::Buffer<ffi::F32>> var, ffi::Result<ffi::Buffer<ffi::U8>> ws,
                  int64_t groups, int64_t act, float eps) {
  return run_bn(x, groups, act, eps, false, [&](const BnEntry& e, int64_t g) {
    return std::unordered_map<int, memory>{
        {DNNL_ARG_SRC, slice(e.data, x.untyped_data(), g)},
        {DNNL_ARG_DST, slice(e.data, y->untyped_data(), g)},
        {DNNL_ARG_MEAN, slice(e.stat, mean->untyped_data(), g)},
        {DNNL_ARG_VARIANCE, slice(e.stat, var->untyped_data(), g)},
        {DNNL_ARG_SCALE, slice(e.stat, scale.untyped_data(), 0)},
        {DNNL_ARG_SHIFT, slice(e.stat, shift.untyped_data(), 0)},
        {DNNL_ARG_WORKSPACE, slice(e.workspace, ws->untyped_data(), g)}};
  });
}

// Backward: x, dy, scale, mean, var, workspace -> dx, dscale and dshift (groups, C).
ffi::Error bn_bwd(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> mean,
                  ffi::Buffer<ffi::F32> var, ffi::Buffer<ffi::U8> ws, ffi::Result<ffi::AnyBuffer> dx,
                  ffi::Result<ffi::Buffer<ffi::F32>> dscale, ffi::Result<ffi::Buffer<ffi::F32>> dshift,
                  int64_t groups, int64_t act, float eps) {
  return run_bn(x, groups, act, eps, true, [&](const BnEntry& e, int64_t g) {
    return std::unordered_map<int, memory>{
        {DNNL_ARG_SRC, slice(e.data, x.untyped_data(), g)},
        {DNNL_ARG_DIFF_DST, slice(e.data, dy.untyped_data(), g)},
        {DNNL_ARG_DIFF_SRC, slice(e.data, dx->untyped_data(), g)},
        {DNNL_ARG_MEAN, slice(e.stat, mean.untyped_data(), g)},
        {DNNL_ARG_VARIANCE, slice(e.stat, var.untyped_data(), g)},
        {DNNL_ARG_SCALE, slice(e.stat, scale.untyped_data(), 0)},
        {DNNL_ARG_DIFF_SCALE, slice(e.stat, dscale->untyped_data(), g)},
        {DNNL_ARG_DIFF_SHIFT, slice(e.stat, dshift->untyped_data(), g)},
        {DNNL_ARG_WORKSPACE, slice(e.workspace, ws.untyped_data(), g)}};
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_onednn_conv_fwd, call_kind<kForward>, binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_onednn_conv_bwd_data, call_kind<kBackwardData>, binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_onednn_conv_bwd_weights, call_kind<kBackwardWeights>,
                              binding());

/* Writes the name of the implementation oneDNN picks for one convolution into `message`
 * (e.g. "brgconv:avx512_core"). `shape` holds the 16 numbers of struct Shape from n to pr,
 * `kind` 0 forward, 1 backward-data, 2 backward-weights.  Returns 1 for a vectorised kernel,
 * 0 for a reference (slow, unvectorised) one, -1 on error. */
extern "C" int weaksup_onednn_describe(const int64_t* shape, int kind, int bf16, char* message,
                                       int length) {
  try {
    const int64_t* d = shape;
    Shape s{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12],
            d[13], d[14], d[15], kind, bf16};
    std::lock_guard<std::mutex> guard(lock());
    const Entry& e = cached(s);
    std::snprintf(message, length, "%s", e.impl.c_str());
    return e.impl.find("ref") == std::string::npos ? 1 : 0;
  } catch (const dnnl::error& e) {
    std::snprintf(message, length, "%s", e.what());
    return -1;
  }
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_max_pool_fwd, max_pool_fwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::S8>>()
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("s")
                                  .Attr<int64_t>("p"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_max_pool_bwd, max_pool_bwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("s")
                                  .Attr<int64_t>("p"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_onednn_bn_fwd, bn_fwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("groups")
                                  .Attr<int64_t>("act")
                                  .Attr<float>("eps"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(weaksup_onednn_bn_bwd, bn_bwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("groups")
                                  .Attr<int64_t>("act")
                                  .Attr<float>("eps"));

/* Bytes of the batch-norm workspace (the ReLU mask) of one batch slice of n x h x w x c
 * with activation `act`, and the kernels oneDNN picks in `message` ("forward / backward");
 * -1 (and the reason in `message`) when oneDNN rejects the shape. */
extern "C" int64_t weaksup_onednn_bn_workspace(int64_t n, int64_t h, int64_t w, int64_t c, int64_t act,
                                               int bf16, float eps, char* message, int length) {
  try {
    std::lock_guard<std::mutex> guard(lock());
    const BnEntry& e = cached_bn(BnShape{n, h, w, c, act, bf16, eps});
    std::snprintf(message, length, "%s", e.impl.c_str());
    return static_cast<int64_t>(e.workspace.get_size());
  } catch (const dnnl::error& err) {
    std::snprintf(message, length, "%s", err.what());
    return -1;
  }
}
