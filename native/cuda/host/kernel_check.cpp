// A bounds and race checker for every kernel of tandem.cu, on the host build (cuda_host.h): each kernel is
// launched, with the grid, block and argument order CudaBackend uses, on small and awkward shapes. Every
// buffer is its own heap allocation of exactly the bytes the launch needs, so AddressSanitizer reports any
// read or write past one (check-kernels.sh builds this with ASan and UBSan). Outputs are filled with a NaN
// before the launch and compared with a reference afterwards: bit for bit where the kernel promises exact
// results, else a double-precision reference within 1e-5 normwise per row; inputs must come back
// unchanged. A race between the threads of a block shows as a difference between the fiber orders:
// check-kernels.sh runs this twice (TANDEM_HOST_FIBER_ORDER unset and =reverse) and compares the digest
// of every kernel's outputs.
//
//   kernel_check            checks every kernel: "case LABEL" as each case starts, then, per kernel,
//                           "kernel NAME cases N digest HEX ok|FAILED"
//   kernel_check NAME...    checks those kernels only
//   kernel_check --list     the names of the kernels it checks, one a line
//
// Exits 1 when a check failed (the failures are printed, indented, before the kernel's line).
#include "cuda_host.h"
#include "../tandem.cu"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// ---- plumbing ---------------------------------------------------------------------------------------

// What outputs hold before a launch: NaNs (and, for integers, a value no kernel writes here) that a
// kernel never produces, so an element still holding one was never written.
constexpr std::uint32_t FILL_F32 = 0x7fe1deadu;
constexpr std::uint16_t FILL_BF16 = 0x7fe1u;
constexpr std::uint32_t FILL_U32 = 0x7fe1deadu;
constexpr int FILL_I32 = 0x7fe1dead;
constexpr unsigned char FILL_U8 = 0xa5;
constexpr double TOLERANCE = 1e-5;  // normwise, per row, against a double-precision reference

std::uint32_t bits_of(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}
float float_of(std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

struct Rng {
    std::uint64_t s;
    std::uint64_t next() {  // splitmix64
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    int below(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }
    float sym(float r) { return static_cast<float>((static_cast<double>(next() >> 11) * 0x1p-53 * 2 - 1) * r); }
};

// One heap allocation of exactly n elements: no slack, so AddressSanitizer catches an access past it.
template <typename T>
class Buf {
  public:
    explicit Buf(std::size_t n) : n_(n), p_(static_cast<T*>(std::malloc(n * sizeof(T)))) {
        if (p_ == nullptr && n != 0) {
            std::perror("kernel_check: malloc");
            std::exit(2);
        }
    }
    explicit Buf(const std::vector<T>& v) : Buf(v.size()) {
        if (n_ != 0) std::memcpy(p_, v.data(), n_ * sizeof(T));
    }
    ~Buf() { std::free(p_); }
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;

    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }
    T& operator[](std::size_t i) { return p_[i]; }
    const T& operator[](std::size_t i) const { return p_[i]; }
    void fill(T v) {
        for (std::size_t i = 0; i < n_; i++) p_[i] = v;
    }
    std::vector<T> copy() const { return n_ == 0 ? std::vector<T>() : std::vector<T>(p_, p_ + n_); }

  private:
    std::size_t n_;
    T* p_;
};

struct State {
    std::string kernel;
    std::string label;  // the case
    int cases = 0;
    int failures = 0;       // of this kernel
    int case_failures = 0;  // of this case
    std::uint64_t digest = 0;
};
State st;

void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));
void fail(const char* format, ...) {
    st.failures++;
    if (++st.case_failures > 6) {
        if (st.case_failures == 7) std::printf("  FAIL %s [%s]: further failures not shown\n", st.kernel.c_str(), st.label.c_str());
        return;
    }
    std::printf("  FAIL %s [%s]: ", st.kernel.c_str(), st.label.c_str());
    va_list args;
    va_start(args, format);
    std::vprintf(format, args);
    va_end(args);
    std::printf("\n");
    std::fflush(stdout);
}

void begin(const char* format, ...) __attribute__((format(printf, 1, 2)));
void begin(const char* format, ...) {
    char label[256];
    va_list args;
    va_start(args, format);
    std::vsnprintf(label, sizeof label, format, args);
    va_end(args);
    st.label = label;
    st.cases++;
    st.case_failures = 0;
    std::printf("case %s\n", label);  // so that a run a sanitizer stops says which case it was in
    std::fflush(stdout);
}

// Folds an output into the kernel's digest (FNV-1a over the size and the bytes).
template <typename T>
void absorb(const Buf<T>& b) {
    auto mix = [](std::uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ull; };
    std::uint64_t size = b.size() * sizeof(T);
    for (std::size_t i = 0; i < sizeof size; i++) st.digest = mix(st.digest, static_cast<unsigned char>(size >> (8 * i)));
    const auto* p = reinterpret_cast<const unsigned char*>(b.data());
    for (std::size_t i = 0; i < size; i++) st.digest = mix(st.digest, p[i]);
}

// Launches kernel (named `name` in messages) over gridX × gridY × gridZ blocks of `block` threads, as
// CudaBackend.launch does (which never launches an empty grid).
template <typename... A>
bool go3(void (*kernel)(A...), const char* name, long long gridX, unsigned gridY, unsigned gridZ, unsigned block,
         std::type_identity_t<A>... args) {
    if (gridX <= 0 || gridX > 0x7fffffff || gridY == 0 || gridZ == 0) {
        fail("bad case: grid of %lld x %u x %u blocks", gridX, gridY, gridZ);
        return false;
    }
    void* params[] = {&args...};
    bool ok = tandem_host::launch(kernel, dim3{static_cast<unsigned>(gridX), gridY, gridZ}, dim3{block, 1, 1}, params, name);
    if (!ok) fail("launch of %s failed: %s", name, tandem_host::last_error().c_str());
    return ok;
}
// The same over gridX × gridY blocks, for the kernel being checked.
template <typename... A>
bool go(void (*kernel)(A...), long long gridX, unsigned gridY, unsigned block, std::type_identity_t<A>... args) {
    return go3(kernel, st.kernel.c_str(), gridX, gridY, 1, block, args...);
}

template <typename T>
void unchanged(const Buf<T>& b, const std::vector<T>& before, const char* what) {
    for (std::size_t i = 0; i < b.size(); i++) {
        if (std::memcmp(&b[i], &before[i], sizeof(T)) != 0) {
            fail("the kernel changed its input %s (element %zu first)", what, i);
            return;
        }
    }
}

template <typename T>
std::string show(T v) {
    char s[64];
    if constexpr (std::is_same_v<T, float>) {
        std::snprintf(s, sizeof s, "%.9g (0x%08" PRIx32 ")", static_cast<double>(v), bits_of(v));
    } else if constexpr (std::is_same_v<T, std::uint16_t> || std::is_same_v<T, unsigned char>) {
        std::snprintf(s, sizeof s, "0x%x", static_cast<unsigned>(v));
    } else if constexpr (std::is_same_v<T, std::uint32_t>) {
        std::snprintf(s, sizeof s, "0x%08" PRIx32, v);
    } else if constexpr (std::is_same_v<T, double>) {
        std::snprintf(s, sizeof s, "%.17g (0x%016" PRIx64 ")", v, std::bit_cast<std::uint64_t>(v));
    } else {
        std::snprintf(s, sizeof s, "%lld", static_cast<long long>(v));
    }
    return s;
}

// Every element bit for bit (nan_any: any NaN matches any NaN). fill: what the output held before the
// launch, to say "never written" where an element still holds it and should not.
template <typename T>
void expect_exact(const Buf<T>& out, const std::vector<T>& ref, const char* what, T fill, bool nan_any = false) {
    std::size_t wrong = 0, first = 0, unwritten = 0;
    for (std::size_t i = 0; i < out.size(); i++) {
        if (std::memcmp(&out[i], &ref[i], sizeof(T)) == 0) continue;
        if constexpr (std::is_same_v<T, float>) {
            if (nan_any && std::isnan(out[i]) && std::isnan(ref[i])) continue;
        }
        if (wrong++ == 0) first = i;
        if (std::memcmp(&out[i], &fill, sizeof(T)) == 0) unwritten++;
    }
    if (wrong != 0) {
        fail("%s: %zu of %zu elements wrong (%zu never written); first [%zu] = %s%s, expected %s", what, wrong,
             out.size(), unwritten, first, show(out[first]).c_str(),
             std::memcmp(&out[first], &fill, sizeof(T)) == 0 ? " (never written)" : "", show(ref[first]).c_str());
    }
}

// Every element written (not NaN where the reference is a number), and each row of `width` elements
// within TOLERANCE of the reference, normwise: |out - ref| <= 1e-5 |ref| (exact where ref is 0).
void expect_close(const Buf<float>& out, const std::vector<double>& ref, std::size_t width, const char* what) {
    std::size_t nans = 0, first = 0, unwritten = 0;
    for (std::size_t i = 0; i < out.size(); i++) {
        if (std::isnan(out[i]) != std::isnan(ref[i])) {
            if (nans++ == 0) first = i;
            if (bits_of(out[i]) == FILL_F32) unwritten++;
        }
    }
    if (nans != 0) {
        fail("%s: %zu of %zu elements NaN where the reference is not or the reverse (%zu never written); first [%zu] = %s, "
             "expected %.9g",
             what, nans, out.size(), unwritten, first, show(out[first]).c_str(), ref[first]);
        return;
    }
    if (width == 0) return;
    std::size_t bad = 0, worst_row = 0;
    double worst = 0;
    for (std::size_t r = 0; r * width < out.size(); r++) {
        double diff = 0, norm = 0;
        for (std::size_t c = r * width; c < (r + 1) * width; c++) {
            if (std::isnan(ref[c])) continue;
            double d = static_cast<double>(out[c]) - ref[c];
            diff += d * d;
            norm += ref[c] * ref[c];
        }
        double err = norm > 0 ? std::sqrt(diff / norm) : (diff > 0 ? INFINITY : 0.0);
        if (!(err <= TOLERANCE)) {
            bad++;
            if (!(err <= worst)) {
                worst = err;
                worst_row = r;
            }
        }
    }
    if (bad != 0) {
        fail("%s: %zu rows of %zu off the double-precision reference by more than %g normwise; worst row %zu: %.3g", what,
             bad, out.size() / width, TOLERANCE, worst_row, worst);
    }
}

// ---- element types --------------------------------------------------------------------------------------

// Weight types, decoded here independently of common.cuh.
struct F32 {
    using storage = float;
    static float decode(float v) { return v; }
    static float random(Rng& r, bool specials) {
        if (specials && r.below(17) == 0) {
            const float s[] = {INFINITY, -INFINITY, float_of(0x7fc12345u), -0.0f, 1e-40f, -3e-39f};
            return s[r.below(6)];
        }
        return r.sym(2);
    }
};
struct Bf16 {
    using storage = std::uint16_t;
    static float decode(std::uint16_t b) { return float_of(static_cast<std::uint32_t>(b) << 16); }
    static std::uint16_t random(Rng& r, bool specials) {
        if (specials && r.below(17) == 0) {
            const std::uint16_t s[] = {0x7f80, 0xff80, 0x7fc5, 0xffa1, 0x8000, 0x0001, 0x807f};
            return s[r.below(7)];
        }
        return static_cast<std::uint16_t>(bits_of(r.sym(2)) >> 16);
    }
};
struct F16 {
    using storage = std::uint16_t;
    static float decode(std::uint16_t h) {
        std::uint32_t sign = h >> 15, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 0x1f) return float_of((sign << 31) | 0x7f800000u | (m << 13));  // inf, or NaN with its payload
        float magnitude = e == 0 ? std::ldexp(static_cast<float>(m), -24) : std::ldexp(static_cast<float>(1024 + m), static_cast<int>(e) - 25);
        return sign ? -magnitude : magnitude;
    }
    static std::uint16_t random(Rng& r, bool specials) {
        if (specials && r.below(17) == 0) {
            const std::uint16_t s[] = {0x7c00, 0xfc00, 0x7e01, 0xfd55, 0x8000, 0x0001, 0x83ff};
            return s[r.below(7)];
        }
        if (r.below(23) == 0) return static_cast<std::uint16_t>((r.below(2) << 15) | r.below(1024));  // subnormal
        return static_cast<std::uint16_t>((r.below(2) << 15) | ((9 + r.below(8)) << 10) | r.below(1024));
    }
};

// f32 -> bf16, round to nearest even, chosen by comparing distances (a NaN keeps its sign and top payload
// bits and becomes quiet). Inputs stay clear of the overflow to infinity.
std::uint16_t to_bf16(float f) {
    std::uint32_t b = bits_of(f);
    if (std::isnan(f)) return static_cast<std::uint16_t>((b >> 16) | 0x40u);
    auto lo = static_cast<std::uint16_t>(b >> 16);
    if ((b & 0xffffu) == 0) return lo;
    auto hi = static_cast<std::uint16_t>(lo + 1);
    double d = std::fabs(static_cast<double>(f)), dlo = std::fabs(static_cast<double>(Bf16::decode(lo))),
           dhi = std::fabs(static_cast<double>(Bf16::decode(hi)));
    if (d - dlo != dhi - d) return d - dlo < dhi - d ? lo : hi;
    return (lo & 1u) ? hi : lo;
}

// KV cache element types.
template <typename KV>
struct Kv;
template <>
struct Kv<float> {
    static constexpr float fill() { return std::bit_cast<float>(FILL_F32); }
    static float store(float v) { return v; }
    static double load(float v) { return v; }
};
template <>
struct Kv<std::uint16_t> {
    static constexpr std::uint16_t fill() { return FILL_BF16; }
    static std::uint16_t store(float v) { return to_bf16(v); }
    static double load(std::uint16_t v) { return Bf16::decode(v); }
};

// ---- element-wise kernels -------------------------------------------------------------------------------

void check_add(void (*kernel)(float*, const float*, const float*, long long), bool silu) {
    Rng rng{11};
    for (long long n : {1LL, 31LL, 255LL, 256LL, 257LL, 1000LL, 4099LL}) {
        begin("n=%lld", n);
        Buf<float> out(n), a(n), b(n);
        for (long long i = 0; i < n; i++) {
            a[i] = rng.sym(silu ? 20.0f : 4.0f);
            b[i] = rng.sym(4.0f);
        }
        out.fill(float_of(FILL_F32));
        auto a0 = a.copy(), b0 = b.copy();
        if (!go(kernel, (n + 255) / 256, 1, 256, out.data(), a.data(), b.data(), n)) continue;
        unchanged(a, a0, silu ? "gate" : "a");
        unchanged(b, b0, silu ? "up" : "b");
        if (silu) {
            std::vector<double> ref(n);
            for (long long i = 0; i < n; i++) ref[i] = a0[i] / (1.0 + std::exp(-static_cast<double>(a0[i]))) * b0[i];
            expect_close(out, ref, 1, "out");
        } else {
            std::vector<float> ref(n);
            for (long long i = 0; i < n; i++) ref[i] = a0[i] + b0[i];
            expect_exact(out, ref, "out", float_of(FILL_F32));
        }
        absorb(out);
    }
}

template <typename W>
void check_add_bias(void (*kernel)(float*, const typename W::storage*, long long, int)) {
    Rng rng{12};
    struct Shape {
        long long rows;
        int width;
    };
    for (Shape s : {Shape{1, 1}, Shape{1, 1000}, Shape{3, 300}, Shape{7, 33}, Shape{5, 17}, Shape{2, 256}, Shape{9, 31}}) {
        begin("rows=%lld width=%d", s.rows, s.width);
        long long n = s.rows * s.width;
        Buf<float> x(n);
        Buf<typename W::storage> bias(s.width);
        for (long long i = 0; i < n; i++) x[i] = rng.sym(4);
        for (int i = 0; i < s.width; i++) bias[i] = W::random(rng, true);
        auto bias0 = bias.copy();
        std::vector<float> ref(n);
        for (long long i = 0; i < n; i++) ref[i] = x[i] + W::decode(bias0[i % s.width]);
        if (!go(kernel, (n + 255) / 256, 1, 256, x.data(), bias.data(), s.rows, s.width)) continue;
        unchanged(bias, bias0, "bias");
        expect_exact(x, ref, "x", float_of(FILL_F32), true);
        absorb(x);
    }
}

template <typename W>
void check_embedding(void (*kernel)(float*, const typename W::storage*, const int*, int, int, int)) {
    Rng rng{13};
    struct Shape {
        std::vector<int> ids;
        int width, vocab;
    };
    const Shape shapes[] = {
        {{0}, 1, 1},
        {{2, 0, 6, 6, 1}, 300, 7},
        {{1, 2, 0, 1}, 257, 3},
        {{-1, 3, 10, 2147483647, -2147483647 - 1, 9}, 64, 10},  // bad ids: their rows become NaN
        {{4}, 1000, 5},
        {{0, 1}, 256, 2},
    };
    for (const Shape& s : shapes) {
        int rows = static_cast<int>(s.ids.size());
        begin("rows=%d width=%d vocab=%d", rows, s.width, s.vocab);
        Buf<float> out(static_cast<std::size_t>(rows) * s.width);
        Buf<typename W::storage> table(static_cast<std::size_t>(s.vocab) * s.width);
        Buf<int> ids(s.ids);
        for (std::size_t i = 0; i < table.size(); i++) table[i] = W::random(rng, true);
        out.fill(float_of(FILL_F32));
        auto table0 = table.copy();
        if (!go(kernel, rows, 1, 256, out.data(), table.data(), ids.data(), rows, s.width, s.vocab)) continue;
        unchanged(table, table0, "table");
        unchanged(ids, s.ids, "ids");
        std::vector<float> ref(out.size());
        for (int r = 0; r < rows; r++) {
            int id = s.ids[r];
            bool valid = id >= 0 && id < s.vocab;
            for (int c = 0; c < s.width; c++) {
                ref[static_cast<std::size_t>(r) * s.width + c] =
                    valid ? W::decode(table0[static_cast<std::size_t>(id) * s.width + c]) : float_of(0x7fc00000u);
            }
        }
        expect_exact(out, ref, "out", float_of(FILL_F32));
        absorb(out);
    }
}

template <typename W>
void check_rmsnorm(void (*kernel)(float*, const float*, const typename W::storage*, int, int, float)) {
    Rng rng{14};
    struct Shape {
        int rows, width;
        float eps;
    };
    for (Shape s : {Shape{1, 1, 1e-5f}, Shape{1, 31, 1e-6f}, Shape{3, 300, 1e-5f}, Shape{2, 257, 1e-6f},
                    Shape{4, 1000, 1e-5f}, Shape{2, 256, 1e-5f}, Shape{1, 4103, 1e-6f}}) {
        begin("rows=%d width=%d eps=%g", s.rows, s.width, static_cast<double>(s.eps));
        std::size_t n = static_cast<std::size_t>(s.rows) * s.width;
        Buf<float> out(n), x(n);
        Buf<typename W::storage> weight(s.width);
        for (std::size_t i = 0; i < n; i++) x[i] = rng.sym(3);
        for (int i = 0; i < s.width; i++) weight[i] = W::random(rng, false);
        out.fill(float_of(FILL_F32));
        auto x0 = x.copy();
        auto w0 = weight.copy();
        if (!go(kernel, s.rows, 1, 256, out.data(), x.data(), weight.data(), s.rows, s.width, s.eps)) continue;
        unchanged(x, x0, "x");
        unchanged(weight, w0, "weight");
        std::vector<double> ref(n);
        for (int r = 0; r < s.rows; r++) {
            const float* row = &x0[static_cast<std::size_t>(r) * s.width];
            double sum = 0;
            for (int c = 0; c < s.width; c++) sum += static_cast<double>(row[c]) * row[c];
            double scale = 1.0 / std::sqrt(sum / s.width + s.eps);
            for (int c = 0; c < s.width; c++) ref[static_cast<std::size_t>(r) * s.width + c] = row[c] * scale * W::decode(w0[c]);
        }
        expect_close(out, ref, s.width, "out");
        absorb(out);
    }
}

// Backend.layerNorm's definition in double, sums in index order.
template <typename W>
std::vector<double> ref_layer_norm(const std::vector<float>& x, const std::vector<typename W::storage>& w,
                                   const std::vector<typename W::storage>& b, int rows, int width, float eps) {
    std::vector<double> ref(x.size());
    for (int r = 0; r < rows; r++) {
        const float* row = &x[static_cast<std::size_t>(r) * width];
        double sum = 0;
        for (int c = 0; c < width; c++) sum += row[c];
        double mean = sum / width, squares = 0;
        for (int c = 0; c < width; c++) squares += (row[c] - mean) * (row[c] - mean);
        double inv = 1.0 / std::sqrt(squares / width + eps);
        for (int c = 0; c < width; c++) {
            ref[static_cast<std::size_t>(r) * width + c] = (row[c] - mean) * inv * W::decode(w[c]) + W::decode(b[c]);
        }
    }
    return ref;
}

template <typename W>
void check_layer_norm(void (*kernel)(float*, const float*, const typename W::storage*, const typename W::storage*, int, int,
                                     float)) {
    Rng rng{21};
    struct Shape {
        int rows, width;
        float eps;
    };
    for (Shape s : {Shape{1, 1, 1e-12f}, Shape{37, 1, 1e-5f}, Shape{3, 7, 1e-5f}, Shape{37, 7, 1e-12f}, Shape{5, 384, 1e-12f},
                    Shape{37, 384, 1e-12f}, Shape{2, 1536, 1e-12f}, Shape{17, 1536, 1e-5f}, Shape{1, 4096, 1e-12f},
                    Shape{6, 4096, 1e-12f}, Shape{4, 257, 1e-5f}, Shape{2, 256, 1e-12f}}) {
        for (bool inPlace : {false, true}) {
            begin("rows=%d width=%d eps=%g%s", s.rows, s.width, static_cast<double>(s.eps), inPlace ? " out=x" : "");
            std::size_t n = static_cast<std::size_t>(s.rows) * s.width;
            Buf<float> out(n), x(n);
            Buf<typename W::storage> weight(s.width), bias(s.width);
            // Rows as a residual stream has them: an offset of up to ±20 on every other row, a spread of 0.1 to 3,
            // a large feature every 97.
            for (int r = 0; r < s.rows; r++) {
                float offset = (r % 2) * rng.sym(20), scale = 1.55f + rng.sym(1.45f);
                for (int c = 0; c < s.width; c++) {
                    x[static_cast<std::size_t>(r) * s.width + c] = offset + scale * rng.sym(c % 97 == 5 ? 30.0f : 1.7f);
                }
            }
            for (int i = 0; i < s.width; i++) {
                weight[i] = W::random(rng, false);
                bias[i] = W::random(rng, false);
            }
            out.fill(float_of(FILL_F32));
            auto x0 = x.copy();
            auto w0 = weight.copy(), b0 = bias.copy();
            Buf<float>& dst = inPlace ? x : out;
            if (!go(kernel, s.rows, 1, 256, dst.data(), x.data(), weight.data(), bias.data(), s.rows, s.width, s.eps)) continue;
            if (!inPlace) unchanged(x, x0, "x");
            unchanged(weight, w0, "weight");
            unchanged(bias, b0, "bias");
            expect_close(dst, ref_layer_norm<W>(x0, w0, b0, s.rows, s.width, s.eps), s.width, "out");
            // Row rows - 1 launched alone: the same bits as among the others.
            Buf<float> alone(s.width), last(s.width);
            std::memcpy(last.data(), &x0[n - s.width], s.width * sizeof(float));
            if (go(kernel, 1, 1, 256, alone.data(), last.data(), weight.data(), bias.data(), 1, s.width, s.eps) &&
                std::memcmp(alone.data(), &dst[n - s.width], s.width * sizeof(float)) != 0) {
                fail("the last row alone differs from the same row among %d", s.rows);
            }
            absorb(dst);
        }
    }
}

void check_gelu(void (*kernel)(float*, const float*, long long)) {
    Rng rng{22};
    for (long long n : {1LL, 7LL, 255LL, 256LL, 257LL, 384LL, 1536LL, 4099LL, 37LL * 384}) {
        for (bool inPlace : {false, true}) {
            begin("n=%lld%s", n, inPlace ? " out=x" : "");
            Buf<float> out(n), x(n);
            for (long long i = 0; i < n; i++) {
                x[i] = i % 3 == 0 ? rng.sym(12) : i % 3 == 1 ? rng.sym(3) * rng.sym(1) : rng.sym(1e-3f);
            }
            out.fill(float_of(FILL_F32));
            auto x0 = x.copy();
            Buf<float>& dst = inPlace ? x : out;
            if (!go(kernel, (n + 255) / 256, 1, 256, dst.data(), x.data(), n)) continue;
            if (!inPlace) unchanged(x, x0, "x");
            std::vector<double> ref(n);
            for (long long i = 0; i < n; i++) ref[i] = 0.5 * x0[i] * (1 + std::erf(x0[i] / std::sqrt(2.0)));
            // Normwise over the whole launch (a few elements could all sit in the negative tail, where the bound below
            // is the meaningful one).
            if (n >= 255) expect_close(dst, ref, n, "out");
            // Element by element: erff within 2 ulp near 1 (1.2e-7) and the rounding of 1 + erf and x/√2 give
            // |x|/2 · 2.4e-7 at most, plus the last product's rounding. For x ≪ 0, 1 + erf cancels: this bound is
            // absolute in x, not relative to the (tiny) result.
            std::size_t bad = 0, first = 0;
            for (long long i = 0; i < n; i++) {
                if (!(std::fabs(dst[i] - ref[i]) <= 1.2e-7 * std::fabs(x0[i]) + 1.2e-7 * std::fabs(ref[i]))) {
                    if (bad++ == 0) first = i;
                }
            }
            if (bad != 0) {
                fail("%zu of %lld elements off by more than 1.2e-7 (|x| + |gelu(x)|); first gelu(%.9g) = %s, exactly %.9g", bad, n,
                     static_cast<double>(x0[first]), show(dst[first]).c_str(), ref[first]);
            }
            absorb(dst);
        }
    }
    begin("specials");
    const std::vector<float> specials = {0.0f, -0.0f, INFINITY, -INFINITY, float_of(0x7fc12345u), 1e30f, -1e30f, -20.0f, 1e-40f};
    Buf<float> x(specials), out(specials.size());
    out.fill(float_of(FILL_F32));
    if (go(kernel, 1, 1, 256, out.data(), x.data(), static_cast<long long>(specials.size()))) {
        unchanged(x, specials, "x");
        // −∞ gives x/2 · (1 − 1) = −∞ · 0 = NaN, as Backend's default and the CPU kernel give.
        const std::vector<float> ref = {0.0f, -0.0f, INFINITY, float_of(0x7fc00000u), float_of(0x7fc00000u), 1e30f, -0.0f, -0.0f,
                                        0.5f * 1e-40f};
        expect_exact(out, ref, "out", float_of(FILL_F32), true);
    }
    absorb(out);
}

void check_rope(void (*kernel)(float*, const int*, const float*, int, int, int, int)) {
    Rng rng{15};
    struct Shape {
        int rows, heads, headDim, rotateHalf;
    };
    for (Shape s : {Shape{1, 1, 2, 1}, Shape{1, 1, 2, 0}, Shape{3, 5, 64, 1}, Shape{2, 3, 40, 0}, Shape{4, 2, 7, 1},
                    Shape{2, 3, 5, 0}, Shape{2, 1, 256, 0}, Shape{3, 7, 128, 1}, Shape{2, 3, 256, 1}}) {
        begin("rows=%d heads=%d headDim=%d rotateHalf=%d", s.rows, s.heads, s.headDim, s.rotateHalf);
        int half = s.headDim / 2;
        std::size_t width = static_cast<std::size_t>(s.heads) * s.headDim, n = s.rows * width;
        Buf<float> x(n), invFreq(half);
        Buf<int> positions(s.rows);
        for (std::size_t i = 0; i < n; i++) x[i] = rng.sym(2);
        for (int i = 0; i < half; i++) invFreq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / s.headDim));
        for (int r = 0; r < s.rows; r++) positions[r] = r == 0 ? 0 : r == 1 ? 131071 : rng.below(5000);
        auto x0 = x.copy();
        auto p0 = positions.copy();
        auto f0 = invFreq.copy();
        if (!go(kernel, s.rows, 1, 128, x.data(), positions.data(), invFreq.data(), s.rows, s.heads, s.headDim,
                s.rotateHalf)) {
            continue;
        }
        unchanged(positions, p0, "positions");
        unchanged(invFreq, f0, "invFreq");
        std::vector<double> ref(x0.begin(), x0.end());  // an odd headDim's last element stays as it was
        for (int r = 0; r < s.rows; r++) {
            for (int h = 0; h < s.heads; h++) {
                std::size_t base = r * width + static_cast<std::size_t>(h) * s.headDim;
                for (int i = 0; i < half; i++) {
                    double angle = static_cast<float>(static_cast<float>(p0[r]) * f0[i]);  // an f32 product
                    double c = std::cos(angle), sn = std::sin(angle);
                    std::size_t o1 = s.rotateHalf ? base + i : base + 2 * i;
                    std::size_t o2 = s.rotateHalf ? base + i + half : o1 + 1;
                    double x1 = x0[o1], x2 = x0[o2];
                    ref[o1] = x1 * c - x2 * sn;
                    ref[o2] = x2 * c + x1 * sn;
                }
            }
        }
        expect_close(x, ref, width, "x");
        absorb(x);
    }
}

// ---- matmul ---------------------------------------------------------------------------------------------

template <typename W>
void check_matmul(void (*kernel)(float*, const float*, const typename W::storage*, int, int, int)) {
    Rng rng{16};
    struct Shape {
        int n, k, m;
    };
    for (Shape s : {Shape{1, 1, 1}, Shape{3, 40, 9}, Shape{5, 300, 17}, Shape{4, 64, 8}, Shape{7, 33, 300},
                    Shape{0, 16, 5}, Shape{9, 257, 13}, Shape{1, 1000, 3}, Shape{6, 32, 1}, Shape{2, 5, 7}}) {
        begin("n=%d k=%d m=%d", s.n, s.k, s.m);
        Buf<float> out(static_cast<std::size_t>(s.n) * s.m), x(static_cast<std::size_t>(s.n) * s.k);
        Buf<typename W::storage> w(static_cast<std::size_t>(s.m) * s.k);
        for (std::size_t i = 0; i < x.size(); i++) x[i] = rng.sym(2);
        for (std::size_t i = 0; i < w.size(); i++) w[i] = W::random(rng, false);
        out.fill(float_of(FILL_F32));
        auto x0 = x.copy();
        auto w0 = w.copy();
        if (!go(kernel, (s.m + 7) / 8, 1, 256, out.data(), x.data(), w.data(), s.n, s.k, s.m)) continue;
        unchanged(x, x0, "x");
        unchanged(w, w0, "w");
        std::vector<double> ref(out.size());
        for (int r = 0; r < s.n; r++) {
            for (int c = 0; c < s.m; c++) {
                double sum = 0;
                for (int i = 0; i < s.k; i++) {
                    sum += static_cast<double>(x0[static_cast<std::size_t>(r) * s.k + i]) *
                           W::decode(w0[static_cast<std::size_t>(c) * s.k + i]);
                }
                ref[static_cast<std::size_t>(r) * s.m + c] = sum;
            }
        }
        expect_close(out, ref, s.m, "out");
        absorb(out);
    }
}

// ---- quantized weights: matmul and embedding gather -------------------------------------------------------

// llama.cpp's block formats, decoded here independently of quant.cuh, as QuantBlocks (Java) and ggml's
// dequantize_row_* decode them: block b of a run of blocks into v[0 .. ELEMENTS).
struct QBlock {
    int bytes, elements;
    void (*decode)(const unsigned char* p, float* v);
    void (*scales)(unsigned char* p, Rng& r, bool specials);  // writes random f16 scales into a random block
};
std::uint16_t u16_at(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
float f16_at(const unsigned char* p) { return F16::decode(u16_at(p)); }
void put_u16(unsigned char* p, std::uint16_t v) {
    p[0] = static_cast<unsigned char>(v);
    p[1] = static_cast<unsigned char>(v >> 8);
}
// Scales small enough that a row of products stays far from overflow: F16::random's normal range is 2^-6 .. 2^2.
std::uint16_t q_scale(Rng& r, bool specials) {
    if (r.below(31) == 0) return static_cast<std::uint16_t>(r.below(2) << 15);  // ±0
    return F16::random(r, specials);
}
const QBlock Q8_0{34, 32,
                  [](const unsigned char* p, float* v) {
                      float d = f16_at(p);
                      for (int j = 0; j < 32; j++) v[j] = static_cast<float>(static_cast<signed char>(p[2 + j])) * d;
                  },
                  [](unsigned char* p, Rng& r, bool s) { put_u16(p, q_scale(r, s)); }};
const QBlock Q4_0{18, 32,
                  [](const unsigned char* p, float* v) {
                      float d = f16_at(p);
                      for (int j = 0; j < 16; j++) {
                          v[j] = static_cast<float>((p[2 + j] & 0xf) - 8) * d;
                          v[j + 16] = static_cast<float>((p[2 + j] >> 4) - 8) * d;
                      }
                  },
                  [](unsigned char* p, Rng& r, bool s) { put_u16(p, q_scale(r, s)); }};
const QBlock Q4_K{144, 256,
                  [](const unsigned char* p, float* v) {
                      float d = f16_at(p), dmin = f16_at(p + 2);
                      const unsigned char* s = p + 4;
                      for (int g = 0; g < 8; g++) {
                          int sc = g < 4 ? s[g] & 63 : (s[g + 4] & 0xf) | ((s[g - 4] >> 6) << 4);
                          int mn = g < 4 ? s[g + 4] & 63 : (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
                          float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
                          for (int l = 0; l < 32; l++) {
                              int q = (p[16 + 32 * (g / 2) + l] >> (4 * (g % 2))) & 0xf;
                              v[32 * g + l] = d1 * static_cast<float>(q) - m1;
                          }
                      }
                  },
                  [](unsigned char* p, Rng& r, bool s) {
                      put_u16(p, q_scale(r, s));
                      put_u16(p + 2, q_scale(r, s));
                  }};
const QBlock Q6_K{210, 256,
                  [](const unsigned char* p, float* v) {
                      float d = f16_at(p + 208);
                      for (int n = 0; n < 2; n++) {
                          const unsigned char *ql = p + 64 * n, *qh = p + 128 + 32 * n;
                          const signed char* sc = reinterpret_cast<const signed char*>(p + 192 + 8 * n);
                          for (int l = 0; l < 32; l++) {
                              int is = l / 16;
                              int q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                              int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                              int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                              int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                              v[128 * n + l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                              v[128 * n + l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                              v[128 * n + l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                              v[128 * n + l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
                          }
                      }
                  },
                  [](unsigned char* p, Rng& r, bool s) { put_u16(p + 208, q_scale(r, s)); }};

// `blocks` random blocks of Q at p: random bytes, then random f16 scales.
void random_blocks(const QBlock& q, unsigned char* p, std::size_t blocks, Rng& r, bool specials) {
    for (std::size_t b = 0; b < blocks; b++) {
        unsigned char* block = p + b * q.bytes;
        for (int i = 0; i < q.bytes; i++) block[i] = static_cast<unsigned char>(r.below(256));
        q.scales(block, r, specials);
    }
}
std::vector<float> decode_blocks(const QBlock& q, const unsigned char* p, std::size_t blocks) {
    std::vector<float> v(blocks * q.elements);
    for (std::size_t b = 0; b < blocks; b++) q.decode(p + b * q.bytes, &v[b * q.elements]);
    return v;
}

// Shapes in blocks per row; x_shift moves x off its 16-byte alignment by one float (the element-wise loads),
// w_shift the weights by two bytes (rows only 2-byte aligned: the narrowest staging).
void check_matmul_quant(const QBlock& q, void (*kernel)(float*, const float*, const unsigned char*, int, int, int)) {
    Rng rng{static_cast<std::uint64_t>(40 + q.bytes)};
    struct Shape {
        int n, blocks, m, x_shift, w_shift;
    };
    const Shape shapes[] = {{1, 1, 1, 0, 0}, {3, 2, 9, 0, 0},  {5, 3, 17, 0, 0}, {9, 8, 13, 0, 0}, {2, 33, 5, 0, 0},
                            {0, 2, 5, 0, 0}, {6, 64, 3, 0, 0}, {4, 5, 8, 1, 0},  {7, 9, 3, 0, 2},  {1, 8, 11, 1, 2}};
    for (Shape s : shapes) {
        int blocks = q.elements == 256 ? (s.blocks + 7) / 8 + s.blocks % 3 : s.blocks;  // fewer of the big blocks
        int k = blocks * q.elements;
        begin("n=%d k=%d (%d blocks) m=%d x+%d w+%d", s.n, k, blocks, s.m, s.x_shift, s.w_shift);
        std::size_t wbytes = static_cast<std::size_t>(s.m) * blocks * q.bytes;
        Buf<float> out(static_cast<std::size_t>(s.n) * s.m), xb(static_cast<std::size_t>(s.n) * k + s.x_shift);
        Buf<unsigned char> wb(wbytes + s.w_shift);
        float* x = xb.data() + s.x_shift;
        unsigned char* w = wb.data() + s.w_shift;
        for (std::size_t i = 0; i < xb.size(); i++) xb[i] = rng.sym(2);
        for (int i = 0; i < s.w_shift; i++) wb[i] = 0;
        random_blocks(q, w, static_cast<std::size_t>(s.m) * blocks, rng, false);
        out.fill(float_of(FILL_F32));
        auto x0 = xb.copy();
        auto w0 = wb.copy();
        if (!go(kernel, (s.m + 7) / 8, 1, 256, out.data(), static_cast<const float*>(x), static_cast<const unsigned char*>(w),
                s.n, k, s.m)) {
            continue;
        }
        unchanged(xb, x0, "x");
        unchanged(wb, w0, "w");
        std::vector<float> wf = decode_blocks(q, w0.data() + s.w_shift, static_cast<std::size_t>(s.m) * blocks);
        std::vector<double> ref(out.size());
        for (int r = 0; r < s.n; r++) {
            for (int c = 0; c < s.m; c++) {
                double sum = 0;
                for (int i = 0; i < k; i++) {
                    sum += static_cast<double>(x0[s.x_shift + static_cast<std::size_t>(r) * k + i]) * wf[static_cast<std::size_t>(c) * k + i];
                }
                ref[static_cast<std::size_t>(r) * s.m + c] = sum;
            }
        }
        expect_close(out, ref, s.m, "out");
        absorb(out);
    }
}

void check_embedding_quant(const QBlock& q, void (*kernel)(float*, const unsigned char*, const int*, int, int, int)) {
    Rng rng{static_cast<std::uint64_t>(60 + q.bytes)};
    struct Shape {
        std::vector<int> ids;
        int blocks, vocab;
    };
    const Shape shapes[] = {
        {{0}, 1, 1},
        {{2, 0, 6, 6, 1}, 3, 7},
        {{1, 2, 0, 1}, 9, 3},
        {{-1, 3, 10, 2147483647, -2147483647 - 1, 9}, 2, 10},  // bad ids: their rows become NaN
        {{4}, 33, 5},
    };
    for (const Shape& s : shapes) {
        int rows = static_cast<int>(s.ids.size());
        int blocks = q.elements == 256 ? (s.blocks + 7) / 8 : s.blocks;
        int width = blocks * q.elements;
        begin("rows=%d width=%d vocab=%d", rows, width, s.vocab);
        Buf<float> out(static_cast<std::size_t>(rows) * width);
        Buf<unsigned char> table(static_cast<std::size_t>(s.vocab) * blocks * q.bytes);
        Buf<int> ids(s.ids);
        random_blocks(q, table.data(), static_cast<std::size_t>(s.vocab) * blocks, rng, true);
        out.fill(float_of(FILL_F32));
        auto table0 = table.copy();
        if (!go(kernel, rows, 1, 256, out.data(), static_cast<const unsigned char*>(table.data()), static_cast<const int*>(ids.data()),
                rows, width, s.vocab)) {
            continue;
        }
        unchanged(table, table0, "table");
        unchanged(ids, s.ids, "ids");
        std::vector<float> values = decode_blocks(q, table0.data(), static_cast<std::size_t>(s.vocab) * blocks);
        std::vector<float> ref(out.size());
        for (int r = 0; r < rows; r++) {
            int id = s.ids[r];
            bool valid = id >= 0 && id < s.vocab;
            for (int c = 0; c < width; c++) {
                ref[static_cast<std::size_t>(r) * width + c] =
                    valid ? values[static_cast<std::size_t>(id) * width + c] : float_of(0x7fc00000u);
            }
        }
        expect_exact(out, ref, "out", float_of(FILL_F32), true);
        absorb(out);
    }
}

// ---- rows: softmax, argmax ------------------------------------------------------------------------------

struct RowShape {
    int rows, width;
};
const RowShape row_shapes[] = {{1, 1}, {5, 31}, {3, 300}, {2, 257}, {1, 1000}, {2, 256}, {8, 513}, {1, 5000}};

void check_softmax(void (*kernel)(float*, int, int)) {
    Rng rng{17};
    for (RowShape s : row_shapes) {
        begin("rows=%d width=%d", s.rows, s.width);
        std::size_t n = static_cast<std::size_t>(s.rows) * s.width;
        Buf<float> x(n);
        for (int r = 0; r < s.rows; r++) {
            for (int c = 0; c < s.width; c++) {
                float v = rng.sym(10);
                if (r % 3 == 1 && c % 5 == 2) v = -INFINITY;          // masked logits
                if (r % 3 == 2 && c == s.width / 2) v = 80.0f;        // one that dominates
                x[static_cast<std::size_t>(r) * s.width + c] = v;
            }
            if (s.width > 1 && r % 3 == 1) x[static_cast<std::size_t>(r) * s.width] = 1.0f;  // not all masked
        }
        auto x0 = x.copy();
        if (!go(kernel, s.rows, 1, 256, x.data(), s.rows, s.width)) continue;
        std::vector<double> ref(n);
        for (int r = 0; r < s.rows; r++) {
            const float* row = &x0[static_cast<std::size_t>(r) * s.width];
            double max = -INFINITY, sum = 0;
            for (int c = 0; c < s.width; c++) max = std::fmax(max, row[c]);
            for (int c = 0; c < s.width; c++) sum += std::exp(row[c] - max);
            for (int c = 0; c < s.width; c++) ref[static_cast<std::size_t>(r) * s.width + c] = std::exp(row[c] - max) / sum;
        }
        expect_close(x, ref, s.width, "x");
        absorb(x);
    }
}

void check_argmax(void (*kernel)(int*, const float*, int, int)) {
    Rng rng{18};
    for (RowShape s : row_shapes) {
        begin("rows=%d width=%d", s.rows, s.width);
        std::size_t n = static_cast<std::size_t>(s.rows) * s.width;
        Buf<float> x(n);
        Buf<int> out(s.rows);
        for (int r = 0; r < s.rows; r++) {
            float* row = &x[static_cast<std::size_t>(r) * s.width];
            int w = s.width;
            for (int c = 0; c < w; c++) row[c] = rng.sym(5);
            switch (r % 8) {
                case 1:  // ties, in different threads' strides: the lowest index wins
                    row[w - 1] = 9;
                    row[w / 2] = 9;
                    row[w / 3 + 1 < w ? w / 3 + 1 : 0] = 9;
                    break;
                case 2:  // NaNs: no greedy token (-1)
                    for (int c = 1; c < w; c += 7) row[c] = NAN;
                    row[w - 1] = 7;
                    break;
                case 3:  // +inf: no greedy token (-1)
                    row[w / 2] = INFINITY;
                    break;
                case 4:  // all -inf: no greedy token (-1)
                    for (int c = 0; c < w; c++) row[c] = -INFINITY;
                    break;
                case 5:  // the largest last
                    row[w - 1] = 6;
                    break;
                case 6:  // -0 and +0 tie, everything else negative: the lower index
                    for (int c = 0; c < w; c++) row[c] = -1.0f - std::fabs(row[c]);
                    row[w > 7 ? 7 : w - 1] = -0.0f;
                    row[w > 300 ? 300 : w - 1] = 0.0f;
                    break;
                case 7:  // -inf everywhere but one, late: that one
                    for (int c = 0; c < w; c++) row[c] = -INFINITY;
                    row[w - 1] = -3;
                    break;
                default:
                    break;
            }
        }
        out.fill(FILL_I32);
        auto x0 = x.copy();
        if (!go(kernel, s.rows, 1, 256, out.data(), x.data(), s.rows, s.width)) continue;
        unchanged(x, x0, "x");
        std::vector<int> ref(s.rows);
        for (int r = 0; r < s.rows; r++) {  // Backend.argmax's rule: lowest index of the largest; -1 for NaN, +inf, all -inf
            const float* row = &x0[static_cast<std::size_t>(r) * s.width];
            int best = -1;
            bool invalid = false;
            for (int c = 0; c < s.width; c++) {
                if (std::isnan(row[c]) || row[c] == INFINITY) invalid = true;
                else if (row[c] > -INFINITY && (best < 0 || row[c] > row[best])) best = c;
            }
            ref[r] = invalid ? -1 : best;
        }
        expect_exact(out, ref, "out", FILL_I32);
        absorb(out);
    }
}

void check_logit_summary(void (*kernel)(double*, int*, float*, const float*, int, int, int)) {
    Rng rng{28};
    const int ks[] = {2, 3, 8};
    for (RowShape s : row_shapes) {
        for (int k : ks) {
            begin("rows=%d width=%d k=%d", s.rows, s.width, k);
            std::size_t n = static_cast<std::size_t>(s.rows) * s.width;
            Buf<float> x(n);
            for (int r = 0; r < s.rows; r++) {
                float* row = &x[static_cast<std::size_t>(r) * s.width];
                int w = s.width;
                for (int c = 0; c < w; c++) row[c] = rng.sym(5);
                switch (r % 8) {
                    case 1:  // ties among the largest, in different threads' strides: lowest ids first
                        row[w - 1] = 9;
                        row[w / 2] = 9;
                        row[w / 3 + 1 < w ? w / 3 + 1 : 0] = 9;
                        break;
                    case 2:  // a NaN: no summary (ids -1, sums NaN)
                        row[w - 1] = NAN;
                        break;
                    case 3:  // +inf: no summary
                        row[w / 2] = INFINITY;
                        break;
                    case 4:  // all -inf: ids -1, sums 0
                        for (int c = 0; c < w; c++) row[c] = -INFINITY;
                        break;
                    case 5:  // fewer finite values than k: the rest -1 / -inf
                        for (int c = 0; c < w; c++) row[c] = -INFINITY;
                        row[w - 1] = 2;
                        break;
                    case 6:  // -0 and +0 tie at the top: the lower id first, then the other
                        for (int c = 0; c < w; c++) row[c] = -1.0f - std::fabs(row[c]);
                        row[w > 7 ? 7 : w - 1] = 0.0f;
                        row[w > 300 ? 300 : 0] = -0.0f;
                        break;
                    case 7:  // masked logits between finite ones
                        for (int c = 0; c < w; c += 3) row[c] = -INFINITY;
                        break;
                    default:
                        break;
                }
            }
            Buf<double> sums(2 * static_cast<std::size_t>(s.rows));
            Buf<int> ids(static_cast<std::size_t>(s.rows) * k);
            Buf<float> values(static_cast<std::size_t>(s.rows) * k);
            sums.fill(std::bit_cast<double>(0x7ff1deaddeadbeefull));
            ids.fill(FILL_I32);
            values.fill(float_of(FILL_F32));
            auto x0 = x.copy();
            if (!go(kernel, s.rows, 1, 256, sums.data(), ids.data(), values.data(), x.data(), s.rows, s.width, k)) continue;
            unchanged(x, x0, "x");
            // The reference: a stable sort by (value descending, id ascending) of the finite values; the sums
            // over the finite values in id order (the kernel's order differs: compared within 1e-12).
            std::vector<int> refIds(ids.size());
            std::vector<float> refValues(values.size());
            for (int r = 0; r < s.rows; r++) {
                const float* row = &x0[static_cast<std::size_t>(r) * s.width];
                bool invalid = false;
                std::vector<int> order;
                for (int c = 0; c < s.width; c++) {
                    if (std::isnan(row[c]) || row[c] == INFINITY) invalid = true;
                    else if (row[c] > -INFINITY) order.push_back(c);
                }
                std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
                double z = 0, wsum = 0;
                if (!order.empty()) {
                    double max = row[order[0]];
                    for (int c = 0; c < s.width; c++) {
                        if (row[c] > -INFINITY) {
                            double d = static_cast<double>(row[c]) - max;
                            z += std::exp(d);
                            wsum += std::exp(d) * d;
                        }
                    }
                }
                for (int j = 0; j < k; j++) {
                    std::size_t i = static_cast<std::size_t>(r) * k + j;
                    bool has = !invalid && j < static_cast<int>(order.size());
                    refIds[i] = has ? order[j] : -1;
                    refValues[i] = has ? row[order[j]] : -INFINITY;
                }
                double gotZ = sums[2 * static_cast<std::size_t>(r)], gotW = sums[2 * static_cast<std::size_t>(r) + 1];
                if (invalid) {
                    if (!std::isnan(gotZ) || !std::isnan(gotW)) fail("row %d holds a NaN or +inf, but its sums are %s, %s", r,
                                                                      show(gotZ).c_str(), show(gotW).c_str());
                } else if (!(std::fabs(gotZ - z) <= 1e-12 * std::fmax(1.0, z)) ||
                           !(std::fabs(gotW - wsum) <= 1e-12 * std::fmax(1.0, std::fabs(z)))) {
                    fail("row %d: sums %s, %s, expected %.17g, %.17g", r, show(gotZ).c_str(), show(gotW).c_str(), z, wsum);
                }
            }
            expect_exact(ids, refIds, "ids", FILL_I32);
            for (int r = 0; r < s.rows; r++) {  // the values of a row without a summary are not defined
                if (ids[static_cast<std::size_t>(r) * k] < 0 && refIds[static_cast<std::size_t>(r) * k] < 0) {
                    for (int j = 0; j < k; j++) values[static_cast<std::size_t>(r) * k + j] = refValues[static_cast<std::size_t>(r) * k + j];
                }
            }
            expect_exact(values, refValues, "values", float_of(FILL_F32));
            absorb(ids);
            absorb(values);
        }
    }
}

void check_select_rows(void (*kernel)(int*, const float*, int, int, int, int, double)) {
    Rng rng{30};
    struct Case {
        int rows, width, score, count;
        double threshold;
        int special;  // 0 none, 1 identical rows (exact ties), 2 a NaN row, 3 a row of -inf, 4 one finite value per row
    };
    std::vector<Case> cases;
    for (int width : {5, 300, 2049}) {
        for (int score = 0; score < 3; score++) {
            cases.push_back({8, width, score, 3, 0, 0});
            cases.push_back({33, width, score, 1, 0, 0});
            cases.push_back({8, width, score, 20, 0, 0});
            cases.push_back({16, width, score, 0, score == 0 ? 0.02 : 0.5, 0});
            cases.push_back({6, width, score, 4, 0, 1});
        }
        cases.push_back({5, width, 0, 2, 0, 2});
        cases.push_back({5, width, 1, 2, 0, 3});
        cases.push_back({4, width, 2, 2, 0, 4});
        cases.push_back({4, width, 0, 0, 0.99, 0});  // nothing exceeds: the single best
    }
    cases.push_back({1024, 64, 1, 7, 0, 0});
    for (const Case& c : cases) {
        begin("rows=%d width=%d score=%d count=%d threshold=%g special=%d", c.rows, c.width, c.score, c.count, c.threshold, c.special);
        Buf<float> x(static_cast<std::size_t>(c.rows) * c.width);
        for (int r = 0; r < c.rows; r++) {
            float* row = &x[static_cast<std::size_t>(r) * c.width];
            float sharp = rng.sym(3) + 3;  // rows of different peakedness
            for (int t = 0; t < c.width; t++) row[t] = rng.sym(sharp);
            if (c.special == 1 && r > 0) std::memcpy(row, &x[0], sizeof(float) * c.width);
            if (c.special == 4) {
                for (int t = 0; t < c.width; t++) row[t] = -INFINITY;
                row[(r * 7) % c.width] = rng.sym(1);
            }
        }
        if (c.special == 2) x[static_cast<std::size_t>(3) * c.width + 1] = NAN;
        if (c.special == 3) {
            for (int t = 0; t < c.width; t++) x[static_cast<std::size_t>(2) * c.width + t] = -INFINITY;
        }
        Buf<int> out(1 + 2 * static_cast<std::size_t>(c.rows));
        out.fill(FILL_I32);
        auto x0 = x.copy();
        if (!go(kernel, 1, 1, 256, out.data(), x.data(), c.rows, c.width, c.score, c.count, c.threshold)) continue;
        unchanged(x, x0, "x");
        // The reference: LogitSummary's arithmetic in id order, then a stable sort by score.
        std::vector<double> scores(c.rows);
        std::vector<int> tokens(c.rows);
        int bad = -1;
        for (int r = 0; r < c.rows && bad < 0; r++) {
            const float* row = &x0[static_cast<std::size_t>(r) * c.width];
            int top = -1, second = -1;
            bool invalid = false;
            for (int t = 0; t < c.width; t++) {
                if (std::isnan(row[t]) || row[t] == INFINITY) invalid = true;
                else if (row[t] > -INFINITY && (top < 0 || row[t] > row[top])) top = t;
            }
            if (invalid || top < 0) {
                bad = r;
                break;
            }
            for (int t = 0; t < c.width; t++) {
                if (t != top && row[t] > -INFINITY && (second < 0 || row[t] > row[second])) second = t;
            }
            double m = row[top], z = 0, w = 0;
            for (int t = 0; t < c.width; t++) {
                if (row[t] > -INFINITY) {
                    double d = static_cast<double>(row[t]) - m;
                    z += std::exp(d);
                    w += std::exp(d) * d;
                }
            }
            double p1 = 1 / z;
            scores[r] = c.score == 0 ? p1 : c.score == 1 ? -(std::log(z) - w / z)
                                                         : p1 - (second >= 0 ? std::exp(static_cast<double>(row[second]) - m) / z : 0.0);
            tokens[r] = top;
        }
        std::vector<int> ref;
        if (bad >= 0) {
            ref = {-1 - bad};
        } else {
            std::vector<int> order(c.rows);
            for (int r = 0; r < c.rows; r++) order[r] = r;
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
            int k;
            if (c.threshold > 0) {
                k = 0;
                while (k < c.rows && scores[order[k]] > c.threshold) k++;
                k = std::max(k, 1);
            } else {
                k = std::min(c.count, c.rows);
            }
            ref.push_back(k);
            for (int i = 0; i < k; i++) ref.push_back(order[i]);
            for (int i = 0; i < k; i++) ref.push_back(tokens[order[i]]);
        }
        bool same = true;
        for (std::size_t i = 0; i < ref.size(); i++) same = same && out[i] == ref[i];
        if (!same) {
            std::string got, want;
            for (std::size_t i = 0; i < ref.size(); i++) {
                got += std::to_string(out[i]) + " ";
                want += std::to_string(ref[i]) + " ";
            }
            fail("out = [%s], expected [%s]", got.c_str(), want.c_str());
        }
        absorb(out);
    }
}

// LogitMix.apply, step for step: the products and the sum in double from 0.0 in row order, the cast to float, then the
// mask row's max by a `v > max` scan from -inf (NaN ignored) and -inf wherever !(m[t] - max >= ln alpha) in double.
std::vector<float> mix_reference(const std::vector<float>& x, const std::vector<float>& w, int width, int maskRow, double alpha) {
    std::vector<float> out(static_cast<std::size_t>(width));
    for (int t = 0; t < width; t++) {
        double sum = 0.0;
        for (std::size_t i = 0; i < w.size(); i++) sum += static_cast<double>(w[i]) * static_cast<double>(x[i * width + t]);
        out[t] = static_cast<float>(sum);
    }
    if (maskRow >= 0 && alpha > 0) {
        const float* m = &x[static_cast<std::size_t>(maskRow) * width];
        float max = -INFINITY;
        for (int t = 0; t < width; t++) {
            if (m[t] > max) max = m[t];
        }
        double floor = std::log(alpha);
        for (int t = 0; t < width; t++) {
            if (!(static_cast<double>(m[t]) - static_cast<double>(max) >= floor)) out[t] = -INFINITY;
        }
    }
    return out;
}

void check_mix_logits(void (*kernel)(float*, const float*, const float*, int, int, int, double)) {
    Rng rng{31};
    struct Case {
        int rows, width;
        std::vector<float> weights;  // empty: random
        int maskRow;                 // LogitMix.maskRow (-1: none)
        double alpha;
        int special;  // 0 none; 1 NaN, ±inf in every row (no +inf in the mask row); 2 a mask row of NaN and -inf only;
                      // 3 +inf in the mask row; 4 -0 and +0 tie at the top of the mask row; 5 results that underflow
                      // to ±0 or overflow to ±inf in the cast to float; 6 mask row values exactly 2.5 below its max, with
                      // ln alpha within 1e-9 of -2.5 (a float comparison keeps what the double one masks); 7 rows 0 and 1
                      // alike and huge (weights 1 and -1 cancel them; another order of the sum loses the rest)
    };
    std::vector<Case> cases;
    for (int width : {1, 5, 300, 2049}) {
        for (int rows = 1; rows <= 4; rows++) {
            std::vector<float> identity(static_cast<std::size_t>(rows), 0.0f);
            identity[0] = 1.0f;
            cases.push_back({rows, width, {}, -1, 0, 0});
            cases.push_back({rows, width, {}, rows - 1, 0.1, 1});
            cases.push_back({rows, width, {}, 0, 1e-3, 0});
            cases.push_back({rows, width, {}, rows / 2, 1, 0});
            cases.push_back({rows, width, identity, 0, 0, 1});    // alpha 0 masks nothing: row 0 exactly
            cases.push_back({rows, width, identity, -1, 0, 1});
            cases.push_back({rows, width, identity, 0, 1, 4});
            cases.push_back({rows, width, {}, rows - 1, 0.5, 2});
            cases.push_back({rows, width, {}, 0, 0.5, 3});
            cases.push_back({rows, width, {}, (rows + 1) / 2 - 1, 0.05, 5});
        }
        cases.push_back({2, width, {0.0f, 1.0f}, 1, 0, 1});  // the other row exactly
        cases.push_back({2, width, {-0.0f, 1.0f}, 0, 1e-300, 1});
        cases.push_back({2, width, {}, 1, std::exp(-2.5 + 1e-9), 6});  // the values 2.5 below the max masked
        cases.push_back({3, width, {}, 0, std::exp(-2.5 - 1e-9), 6});  // and kept
        cases.push_back({3, width, {1.0f, -1.0f, 0.75f}, -1, 0, 7});
        cases.push_back({4, width, {1.0f, -1.0f, 0.75f, -2.0f}, 2, 0.2, 7});
    }
    cases.push_back({2, 151936, {1.5f, -0.5f}, 0, 0.1, 1});
    cases.push_back({4, 151936, {}, 3, 1e-4, 0});
    cases.push_back({1, 151936, {1.0f}, 0, 1, 4});
    for (const Case& c : cases) {
        begin("rows=%d width=%d weights=%s mask=%d alpha=%g special=%d", c.rows, c.width, c.weights.empty() ? "random" : "given",
              c.maskRow, c.alpha, c.special);
        std::vector<float> w = c.weights;
        if (w.empty()) {
            for (int i = 0; i < c.rows; i++) w.push_back(c.special == 5 ? (i % 2 ? 3e25f : -1e-30f) : rng.sym(3));
        }
        std::size_t width = static_cast<std::size_t>(c.width);
        Buf<float> x(static_cast<std::size_t>(c.rows) * width);
        for (int r = 0; r < c.rows; r++) {
            float* row = &x[r * width];
            bool isMask = r == c.maskRow;
            for (std::size_t t = 0; t < width; t++) {
                row[t] = rng.sym(8);
                if (c.special == 5) row[t] = (t + r) % 2 ? rng.sym(3e20f) : rng.sym(1e-8f);
                if (c.special == 7 && r < 2) row[t] = r == 0 ? rng.sym(1e20f) : x[t];
            }
            switch (c.special) {
                case 1:
                    for (std::size_t t = 0; t < width; t += 37) row[t] = t % 2 ? NAN : float_of(0x7fc12345u);  // row[0] NaN
                    for (std::size_t t = 5; t < width; t += 41) row[t] = -INFINITY;
                    for (std::size_t t = 7; t < width && !isMask; t += 53) row[t] = r % 2 ? INFINITY : -0.0f;
                    for (std::size_t t = 11; t < width; t += 59) row[t] = float_of(0xffc00001u);
                    break;
                case 2:
                    if (isMask) for (std::size_t t = 0; t < width; t++) row[t] = t % 3 ? -INFINITY : NAN;
                    break;
                case 3:
                    if (isMask) row[width / 2] = INFINITY;
                    break;
                case 4:
                    if (isMask) {
                        for (std::size_t t = 0; t < width; t++) row[t] = -1.0f - std::fabs(row[t]);
                        row[width > 7 ? 7 : width - 1] = -0.0f;
                        row[width > 300 ? 300 : 0] = 0.0f;
                    }
                    break;
                case 6:
                    if (isMask) {
                        for (std::size_t t = 0; t < width; t++) row[t] = t % 4 == 1 ? -1.5f : -3.0f + rng.sym(0.4f);
                        row[width / 3] = 1.0f;
                    }
                    break;
                default:
                    break;
            }
        }
        Buf<float> weights(w);
        Buf<float> out(width);
        out.fill(float_of(FILL_F32));
        auto x0 = x.copy();
        bool masks = c.maskRow >= 0 && c.alpha > 0;  // LogitMix.masks(): CudaBackend passes -1 otherwise
        if (!go(kernel, 1, 1, 256, out.data(), x.data(), weights.data(), c.rows, c.width, masks ? c.maskRow : -1,
                std::log(c.alpha))) {
            continue;
        }
        unchanged(x, x0, "x");
        unchanged(weights, w, "weights");
        expect_exact(out, mix_reference(x0, w, c.width, c.maskRow, c.alpha), "out", float_of(FILL_F32));
        // A unit weight on one row and zeros elsewhere gives that row (-0 as +0), where the other rows are finite (0 · ±inf
        // and 0 · NaN are NaN).
        bool identity = !masks;
        int unit = -1;
        for (int i = 0; i < c.rows; i++) {
            if (w[i] == 1.0f && unit < 0) unit = i;
            else if (w[i] != 0.0f) identity = false;
        }
        if (identity && unit >= 0) {
            for (std::size_t t = 0; t < width; t++) {
                bool othersFinite = true;
                for (int i = 0; i < c.rows; i++) othersFinite = othersFinite && (i == unit || std::isfinite(x0[i * width + t]));
                if (!othersFinite) continue;
                float want = x0[unit * width + t];
                if (!(out[t] == want || (std::isnan(out[t]) && std::isnan(want)))) {
                    fail("a unit weight on row %d: out[%zu] = %s, the row holds %s", unit, t, show(out[t]).c_str(), show(want).c_str());
                    break;
                }
            }
        }
        absorb(out);
    }
}

// ---- the KV cache: write_kv, row gathers and scatters ---------------------------------------------------

template <typename KV>
void check_write_kv(void (*kernel)(KV*, KV*, const float*, const float*, const int*, int, int)) {
    Rng rng{19};
    struct Shape {
        int width, numSlots;
        std::vector<int> slots;
    };
    const Shape shapes[] = {
        {1, 4, {2}},
        {120, 16, {15, 0, 7, 8, 3}},  // 3 KV heads of 40
        {300, 7, {6, 1, 0}},          // wider than the block
        {512, 8, {7, 6, 5, 4, 3, 2, 1, 0}},  // 2 KV heads of 256, every slot
        {40, 3, {1, 2}},
        {33, 5, {4}},
    };
    for (const Shape& s : shapes) {
        int rows = static_cast<int>(s.slots.size());
        begin("rows=%d width=%d slots=%d", rows, s.width, s.numSlots);
        std::size_t cache = static_cast<std::size_t>(s.numSlots) * s.width, n = static_cast<std::size_t>(rows) * s.width;
        Buf<KV> keys(cache), values(cache);
        Buf<float> k(n), v(n);
        Buf<int> slots(s.slots);
        for (std::size_t i = 0; i < n; i++) {
            k[i] = rng.sym(3);
            v[i] = rng.sym(3);
            if (i % 11 == 3) k[i] = float_of(0x3f808000u + (static_cast<std::uint32_t>(i) & 0x10000u));  // ties
            if (i % 29 == 5) v[i] = float_of(i % 2 ? 0x7f800001u : 0xffa00000u);  // NaNs
            if (i % 31 == 6) v[i] = -INFINITY;
        }
        keys.fill(Kv<KV>::fill());
        values.fill(Kv<KV>::fill());
        auto k0 = k.copy(), v0 = v.copy();
        if (!go(kernel, rows, 1, 256, keys.data(), values.data(), k.data(), v.data(), slots.data(), rows, s.width)) continue;
        unchanged(k, k0, "k");
        unchanged(v, v0, "v");
        unchanged(slots, s.slots, "slots");
        std::vector<KV> refK(cache, Kv<KV>::fill()), refV(cache, Kv<KV>::fill());
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < s.width; c++) {
                std::size_t to = static_cast<std::size_t>(s.slots[r]) * s.width + c, from = static_cast<std::size_t>(r) * s.width + c;
                refK[to] = Kv<KV>::store(k0[from]);
                refV[to] = Kv<KV>::store(v0[from]);
            }
        }
        expect_exact(keys, refK, "keys", Kv<KV>::fill());
        expect_exact(values, refV, "values", Kv<KV>::fill());
        absorb(keys);
        absorb(values);
    }
}

struct RowsShape {
    long long width;  // words or bytes
    int srcRows;      // gather: rows of src; scatter: rows of dst
    std::vector<int> rows;
};

template <typename T>
void check_gather(void (*kernel)(T*, const T*, const int*, int, long long), const std::vector<RowsShape>& shapes, T fill) {
    Rng rng{20};
    for (const RowsShape& s : shapes) {
        int count = static_cast<int>(s.rows.size());
        begin("count=%d width=%lld srcRows=%d", count, s.width, s.srcRows);
        Buf<T> dst(count * s.width), src(s.srcRows * s.width);
        Buf<int> rows(s.rows);
        for (std::size_t i = 0; i < src.size(); i++) src[i] = static_cast<T>(rng.next());
        dst.fill(fill);
        auto src0 = src.copy();
        if (!go(kernel, count, 1, 256, dst.data(), src.data(), rows.data(), count, s.width)) continue;
        unchanged(src, src0, "src");
        unchanged(rows, s.rows, "rows");
        std::vector<T> ref(dst.size());
        for (int i = 0; i < count; i++) {
            for (long long c = 0; c < s.width; c++) ref[i * s.width + c] = src0[s.rows[i] * s.width + c];
        }
        expect_exact(dst, ref, "dst", fill);
        absorb(dst);
    }
}

void check_scatter(void (*kernel)(unsigned*, const unsigned*, const int*, int, long long)) {
    Rng rng{21};
    const std::vector<RowsShape> shapes = {
        {1, 1, {0}}, {300, 9, {8, 0, 3, 6, 7}}, {257, 3, {2, 1, 0}}, {0, 6, {1, 0, 5, 2}}, {1027, 4, {3, 1}},
        {64, 16, {15, 0, 9}}, {60, 5, {4}},
    };
    for (const RowsShape& s : shapes) {
        int count = static_cast<int>(s.rows.size());
        begin("count=%d words=%lld dstRows=%d", count, s.width, s.srcRows);
        Buf<unsigned> dst(s.srcRows * s.width), src(count * s.width);
        Buf<int> rows(s.rows);
        for (std::size_t i = 0; i < dst.size(); i++) dst[i] = static_cast<unsigned>(rng.next());
        for (std::size_t i = 0; i < src.size(); i++) src[i] = static_cast<unsigned>(rng.next());
        auto src0 = src.copy();
        std::vector<unsigned> ref = dst.copy();  // rows not named keep what they held
        for (int i = 0; i < count; i++) {
            for (long long c = 0; c < s.width; c++) ref[s.rows[i] * s.width + c] = src0[i * s.width + c];
        }
        if (!go(kernel, count, 1, 256, dst.data(), src.data(), rows.data(), count, s.width)) continue;
        unchanged(src, src0, "src");
        unchanged(rows, s.rows, "rows");
        expect_exact(dst, ref, "dst", FILL_U32);
        absorb(dst);
    }
}

// ---- attention ------------------------------------------------------------------------------------------

struct AttnRow {
    int table;   // index in AttnCase::tables
    int prefix;  // sees logical positions [0, prefix)
    int extra;   // index in AttnCase::extras, or -1
    int count;   // how many of that extra array it sees
};
struct AttnCase {
    std::string label;
    int heads, kvHeads, headDim, blockSize, numBlocks;
    std::vector<std::vector<int>> tables, extras;
    std::vector<AttnRow> rows;
};

std::vector<AttnCase> attention_cases() {
    std::vector<AttnCase> cases;
    {
        AttnCase c{"decode: 1 row seeing 20 positions, 2 heads, headDim 40, blockSize 16", 2, 2, 40, 16, 3, {{2, 0}}, {}, {}};
        c.rows = {{0, 20, -1, 0}};
        cases.push_back(c);
    }
    {
        AttnCase c{"causal prefill of 37 rows, 6 heads over 2 KV heads, headDim 40, blockSize 16", 6, 2, 40, 16, 5,
                   {{3, 1, 4}}, {}, {}};
        for (int r = 0; r < 37; r++) c.rows.push_back({0, r + 1, -1, 0});
        cases.push_back(c);
    }
    {
        AttnCase c{"headDim 256, 3 heads over 1 KV head, blockSize 1, a row that sees nothing", 3, 1, 256, 1, 12,
                   {{7, 3, 11, 0, 5, 9, 1, 10, 2, 4}}, {}, {}};
        c.rows = {{0, 10, -1, 0}, {0, 0, -1, 0}, {0, 3, -1, 0}};
        cases.push_back(c);
    }
    {
        // Tree verification: a shared prefix of 6, tree nodes at positions 6..12, each row seeing its
        // ancestors and itself; a second sequence whose table is longer than it needs (block 3 stays NaN).
        AttnCase c{"tree rows with extra positions, 4 heads, headDim 64, blockSize 4", 4, 4, 64, 4, 7,
                   {{5, 2, 0, 4}, {1, 3}},
                   {{6}, {6, 7}, {6, 8}, {6, 7, 9}, {6, 8, 10, 11}, {6, 8, 10, 12}},
                   {}};
        c.rows.push_back({0, 6, -1, 0});
        for (int e = 0; e < 6; e++) c.rows.push_back({0, 6, e, static_cast<int>(c.extras[e].size())});
        c.rows.push_back({1, 3, -1, 0});
        cases.push_back(c);
    }
    {
        // Block-sparse segments: rows sharing one extra array and seeing different lengths of it, and a
        // bidirectional row.
        AttnCase c{"segments sharing an extra array and a bidirectional row, 3 heads over 1 KV head, headDim 128, "
                   "blockSize 32",
                   3, 1, 128, 32, 4, {{3, 0, 2}}, {{}}, {}};
        for (int p = 40; p < 70; p++) c.extras[0].push_back(p);
        c.rows = {{0, 40, 0, 1}, {0, 40, 0, 5}, {0, 40, 0, 17}, {0, 40, 0, 30}, {0, 40, 0, 30}, {0, 70, -1, 0}, {0, 40, -1, 0}};
        cases.push_back(c);
    }
    {
        AttnCase c{"causal 11 rows, 9 heads over 3 KV heads, headDim 72, blockSize 2", 9, 3, 72, 2, 8,
                   {{7, 6, 5, 4, 3, 2}}, {}, {}};
        for (int r = 0; r < 11; r++) c.rows.push_back({0, r + 1, -1, 0});
        cases.push_back(c);
    }
    {
        AttnCase c{"300 positions, 2 heads over 1 KV head, headDim 256, blockSize 64", 2, 1, 256, 64, 6,
                   {{4, 1, 5, 0, 2}}, {}, {}};
        c.rows = {{0, 300, -1, 0}, {0, 299, -1, 0}, {0, 1, -1, 0}, {0, 64, -1, 0}, {0, 65, -1, 0}};
        cases.push_back(c);
    }
    {
        AttnCase c{"headDim 1, blockSize 8", 1, 1, 1, 8, 2, {{1}}, {}, {}};
        c.rows = {{0, 1, -1, 0}, {0, 5, -1, 0}, {0, 8, -1, 0}};
        cases.push_back(c);
    }
    {
        AttnCase c{"two sequences and a tree in one launch, 4 heads over 2 KV heads, headDim 96, blockSize 16", 4, 2, 96,
                   16, 4, {{0, 2}, {1}}, {{20, 22, 25}}, {}};
        c.rows = {{0, 20, -1, 0}, {1, 7, -1, 0}, {0, 20, 0, 1}, {0, 20, 0, 3}, {1, 16, -1, 0}};
        cases.push_back(c);
    }
    {
        // Long contexts: rows of several splits of CudaBackend's 256 keys (257, 270, 512, 513, 600 and 1100
        // keys: 2 to 5 splits) in one launch with rows of one split (0, 1, 256 keys), so that most blocks of
        // the split grid leave early; the rows of the second sequence have their split boundary inside
        // their extra positions (and 257 keys: a last split of one extra position). The two sequences share
        // physical blocks.
        AttnCase c{"long contexts of 1 to 5 splits among short rows, 4 heads over 2 KV heads, headDim 48, blockSize 16",
                   4, 2, 48, 16, 80, {{}, {}}, {{}}, {}};
        for (int i = 0; i < 70; i++) c.tables[0].push_back((i * 37 + 5) % 80);
        for (int i = 0; i < 20; i++) c.tables[1].push_back((i * 13 + 3) % 80);
        for (int i = 0; i < 20; i++) c.extras[0].push_back(250 + 3 * i);
        c.rows = {{0, 1100, -1, 0}, {0, 1, -1, 0}, {0, 257, -1, 0}, {1, 250, 0, 20}, {0, 600, -1, 0}, {0, 256, -1, 0},
                  {0, 0, -1, 0},    {1, 250, 0, 6}, {0, 512, -1, 0}, {1, 250, 0, 7},  {0, 513, -1, 0}};
        cases.push_back(c);
    }
    return cases;
}

// The visible logical positions of a row, in increasing order.
std::vector<int> visible(const AttnCase& c, const AttnRow& row) {
    std::vector<int> p;
    for (int j = 0; j < row.prefix; j++) p.push_back(j);
    for (int j = 0; j < row.count; j++) p.push_back(c.extras[row.extra][j]);
    return p;
}

// CudaBackend.descriptor: four ints per row, then each table and extra array once, in order of first use.
std::vector<int> descriptor(const AttnCase& c) {
    int n = static_cast<int>(c.rows.size());
    std::vector<int> tableAt(c.tables.size(), -1), extraAt(c.extras.size(), -1);
    std::vector<const std::vector<int>*> arrays;
    int length = 4 * n;
    std::vector<int> head(4 * n);
    for (int r = 0; r < n; r++) {
        const AttnRow& row = c.rows[r];
        std::vector<int> seen = visible(c, row);
        int extent = seen.empty() ? 0 : seen.back() + 1;
        const std::vector<int>& table = c.tables[row.table];
        if ((extent + c.blockSize - 1) / c.blockSize > static_cast<int>(table.size())) {
            std::fprintf(stderr, "kernel_check: bad case %s: row %d's block table is too short\n", c.label.c_str(), r);
            std::exit(2);
        }
        for (std::size_t i = 1; i < seen.size(); i++) {
            if (seen[i] <= seen[i - 1]) {
                std::fprintf(stderr, "kernel_check: bad case %s: row %d's positions are not increasing\n", c.label.c_str(), r);
                std::exit(2);
            }
        }
        if (tableAt[row.table] < 0) {
            tableAt[row.table] = length;
            arrays.push_back(&table);
            length += static_cast<int>(table.size());
        }
        int extraIndex = 0;
        if (row.count > 0) {
            if (extraAt[row.extra] < 0) {
                extraAt[row.extra] = length;
                arrays.push_back(&c.extras[row.extra]);
                length += static_cast<int>(c.extras[row.extra].size());
            }
            extraIndex = extraAt[row.extra];
        }
        head[4 * r] = tableAt[row.table];
        head[4 * r + 1] = row.prefix;
        head[4 * r + 2] = extraIndex;
        head[4 * r + 3] = row.count;
    }
    std::vector<int> desc = head;
    for (const std::vector<int>* a : arrays) desc.insert(desc.end(), a->begin(), a->end());
    return desc;
}

// CudaBackend.splits, with SPLIT_KEYS = splitKeys: how many splits a row that sees `visible` keys takes.
int splits_of(int visible, int splitKeys) {
    return visible <= splitKeys ? 1 : (visible + splitKeys - 1) / splitKeys;
}
constexpr int SPLIT_KEYS = 256;  // CudaBackend.SPLIT_KEYS

int row_visible(const AttnRow& row) { return row.prefix + row.count; }

// CudaBackend.attention's maxSplits for a launch of all of c's rows.
int max_splits(const AttnCase& c, int splitKeys) {
    int m = 1;
    for (const AttnRow& row : c.rows) m = std::max(m, splits_of(row_visible(row), splitKeys));
    return m;
}

// The splitKeys each case runs with: CudaBackend's, and small ones that cut short rows into many splits
// cheaply (7: a last split shorter than the others; 3: fewer keys than warps, so one warp of every split
// sees none).
std::vector<int> split_keys_for(const AttnCase& c) {
    int longest = 0;
    for (const AttnRow& row : c.rows) longest = std::max(longest, row_visible(row));
    if (longest > 400) return {SPLIT_KEYS, 37};
    return {SPLIT_KEYS, 7, 3};
}

int block_shift(int blockSize) {
    int shift = 0;
    while ((1 << shift) < blockSize) shift++;
    return shift;
}
float attention_scale(int headDim) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(headDim))); }

template <typename KV>
using SplitKernel = void (*)(float*, const float*, const KV*, const KV*, const int*, int, int, int, int, int, float, int, int);
using MergeKernel = void (*)(float*, const float*, const int*, int, int, int, int, int);

// Fills `partial` for a launch: NaN everywhere, except the max of each slot of a split its row does not
// have, which gets a large finite number (on the device that scratch holds stale numbers). The merge must
// not read those slots: one that does takes it for the largest max (fmaxf would pass a NaN over), weighs
// the row's own splits by 0 and gives a NaN.
void poison_partial(Buf<float>& partial, const AttnCase& c, int splitKeys, int maxSplits) {
    partial.fill(float_of(FILL_F32));
    std::size_t width = static_cast<std::size_t>(c.headDim) + 2;
    for (std::size_t r = 0; r < c.rows.size(); r++) {
        for (int h = 0; h < c.heads; h++) {
            for (int s = splits_of(row_visible(c.rows[r]), splitKeys); s < maxSplits; s++) {
                partial[((r * c.heads + h) * maxSplits + s) * width] = 1e30f;
            }
        }
    }
}

// The two launches CudaBackend.attention makes for a range of rows: the split kernel over
// (rows, heads, maxSplits) blocks into `partial` (rows × heads × maxSplits × (headDim + 2) floats), then
// tandem_attention_merge over (rows, heads) blocks from `partial` into `out`; 128 threads a block. Checks
// that neither changes its inputs. False when a launch failed.
template <typename KV>
bool run_attention(SplitKernel<KV> split, const AttnCase& c, int splitKeys, int maxSplits, Buf<float>& out,
                   Buf<float>& partial, Buf<float>& q, Buf<KV>& keys, Buf<KV>& values) {
    int rows = static_cast<int>(c.rows.size());
    std::vector<int> d0 = descriptor(c);
    Buf<int> desc(d0);
    auto q0 = q.copy();
    auto k0 = keys.copy(), v0 = values.copy();
    if (!go3(split, st.kernel.c_str(), rows, static_cast<unsigned>(c.heads), static_cast<unsigned>(maxSplits), 128,
             partial.data(), q.data(), keys.data(), values.data(), desc.data(), rows, c.heads, c.kvHeads, c.headDim,
             block_shift(c.blockSize), attention_scale(c.headDim), splitKeys, maxSplits)) {
        return false;
    }
    unchanged(q, q0, "q");
    unchanged(keys, k0, "keys");
    unchanged(values, v0, "values");
    unchanged(desc, d0, "desc");
    auto p0 = partial.copy();
    if (!go3(tandem_attention_merge, "tandem_attention_merge", rows, static_cast<unsigned>(c.heads), 1, 128, out.data(),
             partial.data(), desc.data(), rows, c.heads, c.headDim, splitKeys, maxSplits)) {
        return false;
    }
    unchanged(partial, p0, "partial (in tandem_attention_merge)");
    unchanged(desc, d0, "desc (in tandem_attention_merge)");
    return true;
}

// Failures of one kind, counted, with the first one's place.
struct Tally {
    const char* what;
    int count = 0, r = 0, h = 0, s = 0;
    double err = 0;
    void add(int r_, int h_, int s_, double err_) {
        if (count++ == 0) {
            r = r_;
            h = h_;
            s = s_;
            err = err_;
        }
    }
    void report(const char* name) const {
        if (count != 0) {
            fail("%s: %d (row, head, split)s %s; first (%d, %d, %d): %.3g", name, count, what, r, h, s, err);
        }
    }
};

// The split kernel's partial results, against double-precision references: for each split s < splits of
// row r and head h, every element written, the max within 1e-5 of the largest score of the split's keys
// (relative where above 1), and the sum and accumulators within TOLERANCE of Σ e^(score − max) and
// Σ e^(score − max) · value, with the kernel's own max (normwise for the accumulators); a row that sees
// nothing: max −∞, sum and accumulators 0. Slots of splits a row does not have are not looked at (they
// hold poison_partial's poison, so the merge reading one shows in its output).
template <typename KV>
void expect_partials(const Buf<float>& partial, const AttnCase& c, int splitKeys, int maxSplits,
                     const std::vector<std::vector<double>>& score, const std::vector<std::vector<std::size_t>>& base,
                     const std::vector<KV>& v0) {
    std::size_t width = static_cast<std::size_t>(c.headDim) + 2;
    Tally unwritten{"with elements never written"}, empty{"of a row that sees nothing not (-inf, 0, 0...)"},
        max{"with the max off the largest score"}, sum{"with the sum off the reference"},
        acc{"with the accumulators off the reference"};
    int rows = static_cast<int>(c.rows.size());
    for (int r = 0; r < rows; r++) {
        int vis = row_visible(c.rows[r]);
        for (int h = 0; h < c.heads; h++) {
            const std::vector<double>& sc = score[static_cast<std::size_t>(r) * c.heads + h];
            const std::vector<std::size_t>& at = base[static_cast<std::size_t>(r) * c.heads + h];
            for (int s = 0; s < splits_of(vis, splitKeys); s++) {
                const float* p = &partial[((static_cast<std::size_t>(r) * c.heads + h) * maxSplits + s) * width];
                std::size_t never = 0;
                for (std::size_t e = 0; e < width; e++) never += bits_of(p[e]) == FILL_F32;
                if (never != 0) {
                    unwritten.add(r, h, s, static_cast<double>(never));
                    continue;
                }
                if (vis == 0) {
                    bool ok = p[0] == -INFINITY && p[1] == 0;
                    for (int d = 0; d < c.headDim; d++) ok = ok && p[2 + d] == 0;
                    if (!ok) empty.add(r, h, s, p[0]);
                    continue;
                }
                int first = s * splitKeys, end = std::min(vis, first + splitKeys);
                double m = -INFINITY;
                for (int j = first; j < end; j++) m = std::fmax(m, sc[j]);
                double mk = p[0];
                if (!(std::fabs(mk - m) <= 1e-5 * std::fmax(1.0, std::fabs(m)))) {
                    max.add(r, h, s, mk - m);
                    continue;
                }
                double total = 0;
                std::vector<double> a(c.headDim, 0.0);
                for (int j = first; j < end; j++) {
                    double w = std::exp(sc[j] - mk);
                    total += w;
                    for (int d = 0; d < c.headDim; d++) a[d] += w * Kv<KV>::load(v0[at[j] + d]);
                }
                double sumErr = std::fabs(p[1] - total) / total;
                if (!(sumErr <= TOLERANCE)) sum.add(r, h, s, sumErr);
                double diff = 0, norm = 0;
                for (int d = 0; d < c.headDim; d++) {
                    diff += (p[2 + d] - a[d]) * (p[2 + d] - a[d]);
                    norm += a[d] * a[d];
                }
                double accErr = norm > 0 ? std::sqrt(diff / norm) : (diff > 0 ? INFINITY : 0.0);
                if (!(accErr <= TOLERANCE)) acc.add(r, h, s, accErr);
            }
        }
    }
    for (const Tally* t : {&unwritten, &empty, &max, &sum, &acc}) t->report("partial");
}

// The split kernels, each with tandem_attention_merge as CudaBackend launches them, on every case with each
// of its splitKeys: the partial results (exactly rows × heads × maxSplits × (headDim + 2) floats, NaN
// before the launch) against references, `out` (NaN before) fully written and within TOLERANCE of a
// double-precision softmax, and batch invariance: each row launched alone (its own maxSplits, descriptor
// and exact-size buffers, over the same cache) gives the same bits, in `out` and in its partial results,
// as among the case's other rows.
template <typename KV>
void check_attention(SplitKernel<KV> split) {
    Rng rng{22};
    for (const AttnCase& c : attention_cases()) {
        int rows = static_cast<int>(c.rows.size());
        std::size_t slotWidth = static_cast<std::size_t>(c.kvHeads) * c.headDim;
        std::size_t slots = static_cast<std::size_t>(c.numBlocks) * c.blockSize;
        std::size_t n = static_cast<std::size_t>(rows) * c.heads * c.headDim;
        std::size_t width = static_cast<std::size_t>(c.headDim) + 2;
        Buf<float> q(n);
        Buf<KV> keys(slots * slotWidth), values(slots * slotWidth);
        for (std::size_t i = 0; i < n; i++) q[i] = rng.sym(1);
        // Only the slots some row sees hold numbers; a read of any other slot makes that output NaN.
        keys.fill(Kv<KV>::fill());
        values.fill(Kv<KV>::fill());
        std::vector<char> seen(slots, 0);
        for (const AttnRow& row : c.rows) {
            for (int p : visible(c, row)) {
                std::size_t slot = static_cast<std::size_t>(c.tables[row.table][p / c.blockSize]) * c.blockSize + p % c.blockSize;
                if (seen[slot]) continue;
                seen[slot] = 1;
                for (std::size_t e = 0; e < slotWidth; e++) {
                    keys[slot * slotWidth + e] = Kv<KV>::store(rng.sym(1));
                    values[slot * slotWidth + e] = Kv<KV>::store(rng.sym(1));
                }
            }
        }
        auto q0 = q.copy();
        auto k0 = keys.copy(), v0 = values.copy();
        // The reference: each (row, head)'s scores of its visible keys in order, where their key and value
        // vectors start, and the softmax-weighted values.
        double scale = attention_scale(c.headDim);
        std::vector<std::vector<double>> score(static_cast<std::size_t>(rows) * c.heads);
        std::vector<std::vector<std::size_t>> base(score.size());
        std::vector<double> ref(n);
        for (int r = 0; r < rows; r++) {
            std::vector<int> positions = visible(c, c.rows[r]);
            const std::vector<int>& table = c.tables[c.rows[r].table];
            for (int h = 0; h < c.heads; h++) {
                std::size_t rh = static_cast<std::size_t>(r) * c.heads + h;
                int kvh = h / (c.heads / c.kvHeads);
                const float* qRow = &q0[rh * c.headDim];
                double max = -INFINITY;
                for (int p : positions) {
                    std::size_t at = (static_cast<std::size_t>(table[p / c.blockSize]) * c.blockSize + p % c.blockSize) * slotWidth +
                                     static_cast<std::size_t>(kvh) * c.headDim;
                    double dot = 0;
                    for (int d = 0; d < c.headDim; d++) dot += qRow[d] * Kv<KV>::load(k0[at + d]);
                    base[rh].push_back(at);
                    score[rh].push_back(dot * scale);
                    max = std::fmax(max, score[rh].back());
                }
                double total = 0;
                std::vector<double> acc(c.headDim, 0.0);
                for (std::size_t j = 0; j < positions.size(); j++) {
                    double w = std::exp(score[rh][j] - max);
                    total += w;
                    for (int d = 0; d < c.headDim; d++) acc[d] += w * Kv<KV>::load(v0[base[rh][j] + d]);
                }
                for (int d = 0; d < c.headDim; d++) ref[rh * c.headDim + d] = positions.empty() ? 0.0 : acc[d] / total;
            }
        }
        for (int splitKeys : split_keys_for(c)) {
            int maxSplits = max_splits(c, splitKeys);
            begin("%s; splitKeys %d, maxSplits %d", c.label.c_str(), splitKeys, maxSplits);
            Buf<float> out(n), partial(static_cast<std::size_t>(rows) * c.heads * maxSplits * width);
            out.fill(float_of(FILL_F32));
            poison_partial(partial, c, splitKeys, maxSplits);
            if (!run_attention(split, c, splitKeys, maxSplits, out, partial, q, keys, values)) continue;
            expect_partials(partial, c, splitKeys, maxSplits, score, base, v0);
            expect_close(out, ref, c.headDim, "out");
            absorb(partial);
            absorb(out);

            begin("%s; splitKeys %d: each row launched alone", c.label.c_str(), splitKeys);
            std::size_t rowWidth = static_cast<std::size_t>(c.heads) * c.headDim;
            for (int r = 0; r < rows; r++) {
                AttnCase alone = c;
                alone.rows = {c.rows[r]};
                int aloneSplits = max_splits(alone, splitKeys);
                Buf<float> qa(std::vector<float>(q0.begin() + r * rowWidth, q0.begin() + (r + 1) * rowWidth));
                Buf<float> outA(rowWidth), partialA(static_cast<std::size_t>(c.heads) * aloneSplits * width);
                outA.fill(float_of(FILL_F32));
                poison_partial(partialA, alone, splitKeys, aloneSplits);
                if (!run_attention(split, alone, splitKeys, aloneSplits, outA, partialA, qa, keys, values)) break;
                std::size_t differ = 0, first = 0;
                for (std::size_t i = 0; i < rowWidth; i++) {
                    if (bits_of(outA[i]) != bits_of(out[r * rowWidth + i]) && differ++ == 0) first = i;
                }
                if (differ != 0) {
                    fail("row %d alone: %zu of %zu elements of out differ from the launch of all %d rows; first [%zu] = %s, "
                         "among the others %s",
                         r, differ, rowWidth, rows, first, show(outA[first]).c_str(), show(out[r * rowWidth + first]).c_str());
                }
                std::size_t partialDiffer = 0;
                for (int h = 0; h < c.heads; h++) {
                    for (int s = 0; s < splits_of(row_visible(c.rows[r]), splitKeys); s++) {
                        const float* a = &partialA[(static_cast<std::size_t>(h) * aloneSplits + s) * width];
                        const float* b = &partial[((static_cast<std::size_t>(r) * c.heads + h) * maxSplits + s) * width];
                        if (std::memcmp(a, b, width * sizeof(float)) != 0) partialDiffer++;
                    }
                }
                if (partialDiffer != 0) {
                    fail("row %d alone: the partial results of %zu (head, split)s differ from the launch of all %d rows", r,
                         partialDiffer, rows);
                }
            }
        }
    }
}

// tandem_attention_merge on its own, over synthetic partial results (exactly rows × heads × maxSplits ×
// (headDim + 2) floats) for every case's rows and splitKeys: maxes spread over ±30, so that the weights
// e^(max_s − M) matter, sums between 1 and the split's key count and accumulators below the sum in
// magnitude (of one sign per dimension across the splits, so that no reference cancels); a row that sees
// nothing has one split of (−∞, 0, 0...), as the split kernels write it. The slots of splits a row does not
// have hold poison_partial's poison, so reading one shows in `out`, which must be fully written (NaN
// before) and within TOLERANCE of Σ_s acc_s · e^(max_s − M) / Σ_s sum_s · e^(max_s − M) in double precision.
void check_attention_merge(MergeKernel merge) {
    Rng rng{23};
    for (const AttnCase& c : attention_cases()) {
        int rows = static_cast<int>(c.rows.size());
        std::size_t width = static_cast<std::size_t>(c.headDim) + 2;
        for (int splitKeys : split_keys_for(c)) {
            int maxSplits = max_splits(c, splitKeys);
            begin("%s; splitKeys %d, maxSplits %d, synthetic partials", c.label.c_str(), splitKeys, maxSplits);
            Buf<float> partial(static_cast<std::size_t>(rows) * c.heads * maxSplits * width);
            Buf<float> out(static_cast<std::size_t>(rows) * c.heads * c.headDim);
            poison_partial(partial, c, splitKeys, maxSplits);
            out.fill(float_of(FILL_F32));
            std::vector<double> ref(out.size(), 0.0);
            for (int r = 0; r < rows; r++) {
                int vis = row_visible(c.rows[r]), splits = splits_of(vis, splitKeys);
                for (int h = 0; h < c.heads; h++) {
                    std::size_t rh = static_cast<std::size_t>(r) * c.heads + h;
                    float* p = &partial[rh * maxSplits * width];
                    if (vis == 0) {
                        p[0] = -INFINITY;
                        p[1] = 0;
                        for (int d = 0; d < c.headDim; d++) p[2 + d] = 0;
                        continue;  // ref stays 0
                    }
                    std::vector<float> sign(c.headDim);
                    for (float& x : sign) x = rng.below(2) ? 1.0f : -1.0f;
                    double m = -INFINITY;
                    for (int s = 0; s < splits; s++) {
                        float* ps = p + s * width;
                        int keysIn = std::min(vis, (s + 1) * splitKeys) - s * splitKeys;
                        ps[0] = rng.sym(30);
                        ps[1] = 1 + (keysIn - 1) * std::fabs(rng.sym(1));
                        for (int d = 0; d < c.headDim; d++) ps[2 + d] = ps[1] * sign[d] * (0.25f + 0.75f * std::fabs(rng.sym(1)));
                        m = std::fmax(m, ps[0]);
                    }
                    double total = 0;
                    std::vector<double> acc(c.headDim, 0.0);
                    for (int s = 0; s < splits; s++) {
                        const float* ps = p + s * width;
                        double w = std::exp(ps[0] - m);
                        total += ps[1] * w;
                        for (int d = 0; d < c.headDim; d++) acc[d] += ps[2 + d] * w;
                    }
                    for (int d = 0; d < c.headDim; d++) ref[rh * c.headDim + d] = acc[d] / total;
                }
            }
            std::vector<int> d0 = descriptor(c);
            Buf<int> desc(d0);
            auto p0 = partial.copy();
            if (!go(merge, rows, static_cast<unsigned>(c.heads), 128, out.data(), partial.data(), desc.data(), rows, c.heads,
                    c.headDim, splitKeys, maxSplits)) {
                continue;
            }
            unchanged(partial, p0, "partial");
            unchanged(desc, d0, "desc");
            expect_close(out, ref, c.headDim, "out");
            absorb(out);
        }
    }
}

// ---- rooflines ------------------------------------------------------------------------------------------

// CudaBackend's multiply-add probe: 1024 blocks of 256 threads.
constexpr int PROBE_BLOCKS = 1024, PROBE_THREADS = 256;

void check_multiply_add_peak(void (*kernel)(float*, int, float, float)) {
    const long long threads = static_cast<long long>(PROBE_BLOCKS) * PROBE_THREADS;
    for (int iterations : {1, 2, 17}) {
        begin("iterations=%d", iterations);
        Buf<float> sink(threads);
        sink.fill(float_of(FILL_F32));
        const float a = 0.999f, b = 1e-3f;
        if (!go(kernel, PROBE_BLOCKS, 1, PROBE_THREADS, sink.data(), iterations, a, b)) continue;
        std::vector<float> ref(threads);
        for (long long t = 0; t < threads; t++) {
            float v[8];
            for (int j = 0; j < 8; j++) v[j] = static_cast<float>(t % PROBE_THREADS) + static_cast<float>(j);
            for (int i = 0; i < iterations; i++) {
                for (float& x : v) x = std::fma(x, a, b);
            }
            ref[t] = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
        }
        expect_exact(sink, ref, "sink", float_of(FILL_F32));
        absorb(sink);
    }
}

// ---- sampling: counter-based draws, temperature sampling ------------------------------------------------

constexpr std::uint64_t FILL_F64 = 0x7ff1deaddeadbeefull;

// Philox4x32-10 on counter (c0..c3) and key (k0, k1), as CounterRng.philox4x32x10 defines it (Java's int
// arithmetic, on uint32_t here), written from the Java and not from sampling.cuh.
struct Philox {
    std::uint32_t x[4];
};
Philox ref_philox(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
    const std::uint64_t m0 = 0xD2511F53ull, m1 = 0xCD9E8D57ull;
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        std::uint64_t p0 = m0 * c0, p1 = m1 * c2;
        std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
        std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
        c1 = static_cast<std::uint32_t>(p1);
        c3 = static_cast<std::uint32_t>(p0);
        c0 = n0;
        c2 = n2;
    }
    return {{c0, c1, c2, c3}};
}

// CounterRng.uniform(seed, stream, position, purpose, index): counter (position, stream low, stream high,
// purpose << 24 | index), key (seed low, seed high), bits64 = x1 << 32 | x0, (bits64 >>> 11) · 2^-53.
double ref_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t position, int purpose, int index) {
    if (position >= (1ull << 32) || index < 0 || index >= (1 << 24) || purpose < 0 || purpose > 255) {
        std::fprintf(stderr, "kernel_check: bad reference draw (position %" PRIu64 ", purpose %d, index %d)\n", position, purpose, index);
        std::exit(2);
    }
    Philox p = ref_philox(static_cast<std::uint32_t>(position), static_cast<std::uint32_t>(stream),
                          static_cast<std::uint32_t>(stream >> 32), static_cast<std::uint32_t>(purpose) << 24 | static_cast<std::uint32_t>(index),
                          static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
    std::uint64_t bits = static_cast<std::uint64_t>(p.x[1]) << 32 | p.x[0];
    return static_cast<double>(bits >> 11) * 0x1p-53;
}

// The reference itself against Random123's known answers for Philox4x32-10 (those of CounterRngTest).
void check_philox_reference() {
    struct Kat {
        std::uint32_t in[6], out[4];
    };
    const Kat kats[] = {
        {{0, 0, 0, 0, 0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{~0u, ~0u, ~0u, ~0u, ~0u, ~0u}, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (const Kat& k : kats) {
        Philox p = ref_philox(k.in[0], k.in[1], k.in[2], k.in[3], k.in[4], k.in[5]);
        if (std::memcmp(p.x, k.out, sizeof k.out) != 0) {
            fail("the checker's Philox4x32-10 misses a known answer: %08" PRIx32 " %08" PRIx32 " %08" PRIx32 " %08" PRIx32
                 ", expected %08" PRIx32 "...", p.x[0], p.x[1], p.x[2], p.x[3], k.out[0]);
        }
    }
}

// A stream anywhere in the 64 bits (the signed extremes too) and a position anywhere in [0, 2^32).
long long random_stream(Rng& rng, int i) {
    const long long special[] = {0, -1, std::numeric_limits<long long>::min(), std::numeric_limits<long long>::max(), 1};
    return i < 5 && rng.below(3) == 0 ? special[i] : static_cast<long long>(rng.next());
}
long long random_position(Rng& rng, int i) {
    const long long special[] = {0, 0xffffffffll, 1, 0x80000000ll};
    return i < 4 && rng.below(3) == 0 ? special[i] : static_cast<long long>(rng.next() >> 32);
}

// CudaBackend.uniforms: (n + 255) / 256 blocks of 256 threads, out[i] bit for bit CounterRng.uniform.
void check_uniform(void (*kernel)(double*, unsigned long long, const long long*, const long long*, int, int, int)) {
    begin("the reference's Philox4x32-10 against known answers");
    check_philox_reference();
    Rng rng{24};
    struct Case {
        int n;
        std::uint64_t seed;
        int purpose, index;
    };
    const Case cases[] = {
        {1, 0, 0, 0}, {7, ~0ull, 1, 1}, {255, rng.next(), 2, 7}, {256, rng.next(), 3, (1 << 24) - 1},
        {257, 0xa4093822299f31d0ull, 4, 0}, {1000, rng.next(), 0, 0}, {4099, rng.next(), 0, 3},
    };
    for (const Case& c : cases) {
        begin("n=%d seed=%016" PRIx64 " purpose=%d index=%d", c.n, c.seed, c.purpose, c.index);
        Buf<long long> streams(c.n), positions(c.n);
        Buf<double> out(c.n);
        for (int i = 0; i < c.n; i++) {
            streams[i] = random_stream(rng, i);
            positions[i] = random_position(rng, i);
        }
        const double fill = std::bit_cast<double>(FILL_F64);
        out.fill(fill);
        auto s0 = streams.copy(), p0 = positions.copy();
        if (!go(kernel, (c.n + 255) / 256, 1, 256, out.data(), static_cast<unsigned long long>(c.seed), streams.data(),
                positions.data(), c.purpose, c.index, c.n)) {
            continue;
        }
        unchanged(streams, s0, "streams");
        unchanged(positions, p0, "positions");
        std::vector<double> ref(c.n);
        for (int i = 0; i < c.n; i++) {
            ref[i] = ref_uniform(c.seed, static_cast<std::uint64_t>(s0[i]), static_cast<std::uint64_t>(p0[i]), c.purpose, c.index);
        }
        expect_exact(out, ref, "out", fill);
        absorb(out);
    }
}

// Sampler.sample for a temperature alone, on one row: -2 for a NaN or +infinity logit (Logits.requireValid),
// l / T in f32 (LogitsProcessors.temperature, skipped at T = 1, which divides exactly anyway), -1 when the
// max is -infinity, weights e^((double) l - max) (1 where l == max), summed in id order, u the SAMPLE
// (ordinal 0) draw with index 0, and Sampler.inverseCdf. weight and cumulative (the running sum after each
// id) come back for judging a mismatch.
struct SampleRef {
    int token = 0;
    double target = 0;
    std::vector<double> weight, cumulative;
};
SampleRef ref_sample(const float* logits, int vocab, float temperature, std::uint64_t seed, long long stream, long long position,
                     int purpose = 0, bool normalized = false) {
    SampleRef ref;
    ref.token = -2;
    for (int t = 0; t < vocab; t++) {
        if (std::isnan(logits[t]) || logits[t] == INFINITY) return ref;
    }
    std::vector<float> l(logits, logits + vocab);
    if (temperature != 1.0f) {
        for (float& x : l) x /= temperature;
    }
    float max = -INFINITY;
    for (float x : l) max = std::max(max, x);
    if (max == -INFINITY) {
        ref.token = -1;
        return ref;
    }
    ref.weight.resize(vocab);
    ref.cumulative.resize(vocab);
    double total = 0;
    for (int t = 0; t < vocab; t++) {
        ref.weight[t] = l[t] == max ? 1.0 : std::exp(static_cast<double>(l[t]) - max);
        total += ref.weight[t];
    }
    if (normalized) {  // DrafterModel's draw: q = w / Σ w, target u · 1
        for (double& w : ref.weight) w /= total;
    }
    double u = ref_uniform(seed, static_cast<std::uint64_t>(stream), static_cast<std::uint64_t>(position), purpose, 0);
    ref.target = normalized ? u : u * total;
    double cumulative = 0;
    int last = -1;
    ref.token = -3;
    for (int t = 0; t < vocab; t++) {
        if (ref.weight[t] > 0) {
            cumulative += ref.weight[t];
            last = t;
            if (ref.token == -3 && ref.target < cumulative) ref.token = t;
        }
        ref.cumulative[t] = cumulative;
    }
    if (ref.token == -3) ref.token = last;
    return ref;
}

// A token other than the reference's passes only when it has a positive weight and the target u · Σ w lies
// within a relative 1e-12 of a cumulative boundary between the two (the kernel associates its sums
// differently).
bool at_boundary(const SampleRef& ref, int token, int vocab) {
    if (ref.token < 0 || token < 0 || token >= vocab || !(ref.weight[token] > 0)) return false;
    for (int t = std::min(token, ref.token); t < std::max(token, ref.token); t++) {
        if (std::fabs(ref.target - ref.cumulative[t]) <= 1e-12 * ref.cumulative[t]) return true;
    }
    return false;
}

int sample_tolerated = 0;  // tokens that differed from the reference's at a boundary, over all cases

// Row kinds. Plain: random logits. Masked: -infinity in every id but a third of them outside the middle
// third (so that whole runs of threads weigh nothing), and in the last id finite. Dead: all -infinity
// (-1). Nan: a NaN among -infinity and finite logits (-2). Inf: a +infinity among finite ones (-2).
// Overflow (for a tiny temperature): one huge finite logit whose l / T overflows to +infinity, the rest
// finite (weight 1 for it, 0 for the rest). Twin: two such. Drown: only huge negative logits, l / T = -inf
// for all (-1). Mixed: -infinity, a huge negative and a huge positive logit among finite ones.
enum class RowKind { plain, masked, dead, nan, inf, overflow, twin, drown, mixed };
const char* const row_kind_names[] = {"plain", "masked", "dead", "nan", "inf", "overflow", "twin", "drown", "mixed"};

void fill_row(float* row, int vocab, RowKind kind, Rng& rng) {
    for (int c = 0; c < vocab; c++) row[c] = rng.sym(8);
    switch (kind) {
        case RowKind::plain:
            break;
        case RowKind::masked:
            for (int c = 0; c < vocab; c++) {
                if (c % 3 != 0 || (c >= vocab / 3 && c < 2 * vocab / 3)) row[c] = -INFINITY;
            }
            row[vocab - 1] = rng.sym(8);
            break;
        case RowKind::dead:
            for (int c = 0; c < vocab; c++) row[c] = -INFINITY;
            break;
        case RowKind::nan:
            for (int c = 0; c < vocab; c += 2) row[c] = -INFINITY;
            row[vocab * 2 / 3] = float_of(0x7fc12345u);
            break;
        case RowKind::inf:
            row[vocab - 1] = INFINITY;
            break;
        case RowKind::overflow:
            row[vocab / 3] = 3e38f;
            break;
        case RowKind::twin:
            row[vocab > 1 ? 1 : 0] = 3e38f;
            row[vocab - 1] = 2e38f;
            break;
        case RowKind::drown:
            for (int c = 0; c < vocab; c++) row[c] = -3e38f + static_cast<float>(c) * 1e32f;
            break;
        case RowKind::mixed:
            for (int c = 1; c < vocab; c += 4) row[c] = -INFINITY;
            row[vocab / 2] = -3e38f;
            row[vocab - 1] = 1e38f;
            break;
    }
}

// CudaBackend.sampleWithTemperature: a block of 256 threads per row. out (poisoned) must be fully written
// with the reference's token, or the reference's -1 / -2.
void check_sample(void (*kernel)(int*, const float*, int, int, float, unsigned long long, const long long*, const long long*, int,
                                int)) {
    Rng rng{25};
    const std::vector<RowKind> five = {RowKind::plain, RowKind::masked, RowKind::dead, RowKind::nan, RowKind::inf};
    const std::vector<RowKind> tiny = {RowKind::overflow, RowKind::twin, RowKind::drown, RowKind::mixed, RowKind::plain};
    struct Case {
        int vocab;
        float temperature;
        std::vector<RowKind> rows;
    };
    std::vector<Case> cases;
    int single = 0;  // the single rows take each kind in turn
    for (int vocab : {1, 7, 255, 256, 257, 1000, 5000}) {
        for (float temperature : {0.25f, 1.0f, 3.0f}) {
            cases.push_back({vocab, temperature, {five[single++ % 5]}});
            cases.push_back({vocab, temperature, five});
        }
    }
    for (int vocab : {1, 7, 257, 1000}) cases.push_back({vocab, 1e-30f, tiny});
    for (int vocab : {7, 257, 1000, 5000}) {  // more draws: 64 rows, plain and masked
        std::vector<RowKind> many(64);
        for (std::size_t r = 0; r < many.size(); r++) many[r] = r % 2 ? RowKind::masked : RowKind::plain;
        cases.push_back({vocab, 0.7f, many});
    }
    for (std::size_t ci = 0; ci < 2 * cases.size(); ci++) {
        const Case& c = cases[ci / 2];
        // Sampler.sample's draw (SAMPLE, weights over their sum) and DrafterModel's (DRAFT, normalised q, target u).
        bool normalized = ci % 2 == 1;
        int purpose = normalized ? 1 : 0;
        int rows = static_cast<int>(c.rows.size());
        std::uint64_t seed = rng.next();
        begin("rows=%d vocab=%d temperature=%g seed=%016" PRIx64 " %s", rows, c.vocab, static_cast<double>(c.temperature), seed,
              normalized ? "DRAFT normalised" : "SAMPLE");
        Buf<float> logits(static_cast<std::size_t>(rows) * c.vocab);
        Buf<long long> streams(rows), positions(rows);
        Buf<int> out(rows);
        for (int r = 0; r < rows; r++) {
            fill_row(&logits[static_cast<std::size_t>(r) * c.vocab], c.vocab, c.rows[r], rng);
            streams[r] = random_stream(rng, r);
            positions[r] = random_position(rng, r);
        }
        out.fill(FILL_I32);
        auto l0 = logits.copy();
        auto s0 = streams.copy(), p0 = positions.copy();
        if (!go(kernel, rows, 1, 256, out.data(), logits.data(), rows, c.vocab, c.temperature,
                static_cast<unsigned long long>(seed), streams.data(), positions.data(), purpose, normalized ? 1 : 0)) {
            continue;
        }
        unchanged(logits, l0, "logits");
        unchanged(streams, s0, "streams");
        unchanged(positions, p0, "positions");
        int wrong = 0, unwritten = 0, first = -1;
        SampleRef firstRef;
        for (int r = 0; r < rows; r++) {
            SampleRef ref = ref_sample(&l0[static_cast<std::size_t>(r) * c.vocab], c.vocab, c.temperature, seed, s0[r], p0[r],
                                       purpose, normalized);
            if (out[r] == ref.token) continue;
            if (at_boundary(ref, out[r], c.vocab)) {
                sample_tolerated++;
                std::printf("  note: row %d: token %d, the reference's %d, at a boundary (u·Σw = %.17g)\n", r, out[r],
                            ref.token, ref.target);
                continue;
            }
            if (wrong++ == 0) {
                first = r;
                firstRef = ref;
            }
            if (out[r] == FILL_I32) unwritten++;
        }
        if (wrong != 0) {
            fail("out: %d of %d rows wrong (%d never written); first row %d (%s) = %s, expected %d (u·Σw = %.17g of Σw = %.17g)",
                 wrong, rows, unwritten, first, row_kind_names[static_cast<int>(c.rows[first])], show(out[first]).c_str(),
                 firstRef.token, firstRef.target, firstRef.cumulative.empty() ? 0.0 : firstRef.cumulative.back());
        }
        absorb(out);
    }
    std::printf("  %d tokens tolerated at a boundary\n", sample_tolerated);
}

// ---- chain verification: ChainVerifier.sample for a temperature alone ------------------------------------

// Sampler.distribution after a temperature alone: l / T (f32, when T != 1), w = e^(l − max) in double (1 at the
// max), p = w / Σ w (Σ in id order). err: -2 for a NaN or +infinity, -1 for a row of -infinity.
std::vector<double> ref_distribution(const float* row, int vocab, float temperature, int* err) {
    *err = 0;
    for (int t = 0; t < vocab; t++) {
        if (std::isnan(row[t]) || row[t] == INFINITY) {
            *err = -2;
            return {};
        }
    }
    std::vector<float> l(row, row + vocab);
    if (temperature != 1.0f) {
        for (float& x : l) x /= temperature;
    }
    float max = -INFINITY;
    for (float x : l) max = std::max(max, x);
    if (max == -INFINITY) {
        *err = -1;
        return {};
    }
    std::vector<double> p(vocab);
    double total = 0;
    for (int t = 0; t < vocab; t++) {
        p[t] = l[t] == max ? 1.0 : std::exp(static_cast<double>(l[t]) - max);
        total += p[t];
    }
    for (double& x : p) x /= total;
    return p;
}

// Sampler.inverseCdf over the positive weights, total = their sum (id order); -1 when none is positive.
int ref_inverse_cdf(const std::vector<double>& w, double u) {
    double total = 0;
    for (double x : w) {
        if (x > 0) total += x;
    }
    if (!(total > 0)) return -1;
    double target = u * total, cumulative = 0;
    int last = -1;
    for (std::size_t t = 0; t < w.size(); t++) {
        if (w[t] > 0) {
            cumulative += w[t];
            last = static_cast<int>(t);
            if (target < cumulative) return last;
        }
    }
    return last;
}

struct VerifyRef {
    int out0, out1;
};

// ChainVerifier.sample / sampleOpenEnded with p and q from ref_distribution, written from the Java.
VerifyRef ref_verify(const float* target, const float* draft, const int* tokens, int n, int vocab, float temperature,
                     std::uint64_t seed, std::uint64_t stream, std::uint64_t position, bool openEnded) {
    int rowsP = openEnded ? n : n + 1, rowsQ = draft != nullptr ? n : 0;
    std::vector<std::vector<double>> p(rowsP), q(rowsQ);
    for (int i = 0; i < rowsP + rowsQ; i++) {
        int err;
        auto d = ref_distribution(i < rowsP ? target + static_cast<std::size_t>(i) * vocab : draft + static_cast<std::size_t>(i - rowsP) * vocab,
                                  vocab, temperature, &err);
        if (err != 0) return {err, i};
        (i < rowsP ? p[i] : q[i - rowsP]) = d;
    }
    for (int i = 0; i < rowsQ; i++) {
        if (!(q[i][tokens[i]] > 0)) return {-3, i};
    }
    for (int i = 0; i < n; i++) {
        int x = tokens[i];
        double px = p[i][x], qx = draft != nullptr ? q[i][x] : 1.0;
        double u = ref_uniform(seed, stream, position + i, 2, 0);
        if (px > 0 && (px >= qx || u <= px / qx)) continue;
        std::vector<double> r(vocab);
        for (int t = 0; t < vocab; t++) {
            double d = p[i][t] - (draft != nullptr ? q[i][t] : (t == x ? 1.0 : 0.0));
            r[t] = d > 0 ? d : 0;
        }
        double ur = ref_uniform(seed, stream, position + i, 3, 0);
        int next = ref_inverse_cdf(r, ur);
        if (next < 0) next = ref_inverse_cdf(p[i], ur);
        return {i, next};
    }
    if (openEnded) return {n, -1};
    return {n, ref_inverse_cdf(p[n], ref_uniform(seed, stream, position + n, 0, 0))};
}

void check_verify_chain(void (*kernel)(int*, const float*, const float*, const int*, int, int, float, unsigned long long,
                                       unsigned long long, long long, int)) {
    Rng rng{29};
    enum class Special { none, nan_target, dead_target, nan_draft, zero_q, close_draft, far_draft };
    const char* const special_names[] = {"none", "nan_target", "dead_target", "nan_draft", "zero_q", "close_draft", "far_draft"};
    struct Case {
        int vocab, n;
        bool withDraft, openEnded;
        float temperature;
        Special special;
    };
    std::vector<Case> cases;
    for (int vocab : {7, 257, 1000}) {
        for (int n : {0, 1, 3, 8}) {
            for (int flags = 0; flags < 4; flags++) {
                bool withDraft = flags & 1, openEnded = flags & 2;
                if (openEnded && n == 0) continue;
                float temperature = flags % 3 == 0 ? 1.0f : 0.7f;
                cases.push_back({vocab, n, withDraft, openEnded, temperature, Special::none});
                cases.push_back({vocab, n, withDraft, openEnded, temperature, withDraft ? Special::close_draft : Special::far_draft});
                if (withDraft) cases.push_back({vocab, n, withDraft, openEnded, temperature, Special::far_draft});
            }
        }
        cases.push_back({vocab, 3, true, false, 1.0f, Special::nan_target});
        cases.push_back({vocab, 3, false, false, 0.5f, Special::dead_target});
        cases.push_back({vocab, 3, true, true, 1.0f, Special::nan_draft});
        cases.push_back({vocab, 3, true, false, 1.0f, Special::zero_q});
    }
    cases.push_back({300, TANDEM_VERIFY_MAX_DRAFT, true, false, 0.9f, Special::close_draft});  // the longest chain
    int decisions = 0, rejections = 0;
    for (const Case& c : cases) {
        for (int repeat = 0; repeat < 4; repeat++) {
            std::uint64_t seed = rng.next(), stream = rng.next() >> (repeat * 16);
            long long position = static_cast<long long>(rng.next() % 100000);
            begin("vocab=%d n=%d draft=%d openEnded=%d T=%g %s seed=%016" PRIx64, c.vocab, c.n, c.withDraft, c.openEnded,
                  static_cast<double>(c.temperature), special_names[static_cast<int>(c.special)], seed);
            int rowsP = c.openEnded ? c.n : c.n + 1;
            Buf<float> target(static_cast<std::size_t>(std::max(rowsP, 1)) * c.vocab);
            Buf<float> draft(static_cast<std::size_t>(std::max(c.n, 1)) * c.vocab);
            Buf<int> tokens(std::max(c.n, 1));
            Buf<int> out(2);
            float scale = c.special == Special::far_draft ? 4.0f : 0.3f;
            for (std::size_t i = 0; i < target.size(); i++) target[i] = rng.sym(4);
            for (int i = 0; i < c.n; i++) {
                for (int t = 0; t < c.vocab; t++) {
                    std::size_t k = static_cast<std::size_t>(i) * c.vocab + t;
                    draft[k] = i < rowsP ? target[k] + rng.sym(scale) : rng.sym(4);
                }
            }
            // The draft tokens: drawn from q as the drafter draws (DRAFT purpose), or from the target's row for a
            // deterministic drafter (which then usually passes).
            for (int i = 0; i < c.n; i++) {
                int err;
                const float* row = c.withDraft ? &draft[static_cast<std::size_t>(i) * c.vocab] : &target[static_cast<std::size_t>(i) * c.vocab];
                auto q = ref_distribution(row, c.vocab, c.temperature, &err);
                tokens[i] = ref_inverse_cdf(q, ref_uniform(seed, stream, position + i, 1, 0));
                if (c.special == Special::far_draft && !c.withDraft && i % 2 == 1) tokens[i] = static_cast<int>(rng.next() % c.vocab);
            }
            switch (c.special) {
                case Special::nan_target:
                    target[static_cast<std::size_t>(rowsP - 1) * c.vocab + c.vocab / 2] = NAN;
                    break;
                case Special::dead_target:
                    for (int t = 0; t < c.vocab; t++) target[static_cast<std::size_t>(1) * c.vocab + t] = -INFINITY;
                    break;
                case Special::nan_draft:
                    draft[static_cast<std::size_t>(2) * c.vocab + 1] = INFINITY;
                    break;
                case Special::zero_q:
                    draft[static_cast<std::size_t>(2) * c.vocab + tokens[2]] = -INFINITY;
                    break;
                default:
                    break;
            }
            out.fill(FILL_I32);
            auto t0 = target.copy(), d0 = draft.copy();
            auto k0 = tokens.copy();
            if (!go(kernel, 1, 1, 256, out.data(), target.data(), c.withDraft ? draft.data() : nullptr, tokens.data(), c.n, c.vocab,
                    c.temperature, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(stream), position,
                    c.openEnded ? 1 : 0)) {
                continue;
            }
            unchanged(target, t0, "target");
            unchanged(draft, d0, "draft");
            unchanged(tokens, k0, "tokens");
            VerifyRef ref = ref_verify(t0.data(), c.withDraft ? d0.data() : nullptr, k0.data(), c.n, c.vocab, c.temperature, seed,
                                       stream, static_cast<std::uint64_t>(position), c.openEnded);
            if (out[0] != ref.out0 || out[1] != ref.out1) {
                fail("out = (%d, %d), expected (%d, %d)", out[0], out[1], ref.out0, ref.out1);
            }
            if (ref.out0 >= 0) {
                decisions++;
                if (ref.out0 < c.n) rejections++;
            }
            absorb(out);
        }
    }
    std::printf("  %d verdicts, %d with a rejection\n", decisions, rejections);
}

// ---- the list ---------------------------------------------------------------------------------------------

std::vector<RowsShape> gather_u32_shapes() {
    return {{1, 1, {0}}, {300, 9, {8, 0, 3, 3, 7}}, {257, 3, {2, 1, 0}}, {0, 2, {1, 0, 1, 0}}, {1027, 4, {3, 1}},
            {60, 5, {4, 4}}};
}
std::vector<RowsShape> gather_u8_shapes() {
    return {{1, 1, {0}}, {301, 9, {8, 0, 3, 3, 7}}, {6, 3, {2, 1, 0}}, {257, 4, {3, 1}}, {1030, 5, {4, 0, 2}},
            {2, 2, {1}}};
}

struct Check {
    const char* name;
    void (*run)();
};
// The kernel's own symbol names it, so a check cannot drift from the kernel it launches; check-kernels.sh
// compares this list with the kernels it finds in the sources.
#define CHECK(kernel, ...) {#kernel, [] { __VA_ARGS__; }}
const Check checks[] = {
    CHECK(tandem_add_f32, check_add(tandem_add_f32, false)),
    CHECK(tandem_silu_mul_f32, check_add(tandem_silu_mul_f32, true)),
    CHECK(tandem_gelu_f32, check_gelu(tandem_gelu_f32)),
    CHECK(tandem_add_bias_f32, check_add_bias<F32>(tandem_add_bias_f32)),
    CHECK(tandem_add_bias_bf16, check_add_bias<Bf16>(tandem_add_bias_bf16)),
    CHECK(tandem_add_bias_f16, check_add_bias<F16>(tandem_add_bias_f16)),
    CHECK(tandem_embedding_gather_f32, check_embedding<F32>(tandem_embedding_gather_f32)),
    CHECK(tandem_embedding_gather_bf16, check_embedding<Bf16>(tandem_embedding_gather_bf16)),
    CHECK(tandem_embedding_gather_f16, check_embedding<F16>(tandem_embedding_gather_f16)),
    CHECK(tandem_rmsnorm_f32, check_rmsnorm<F32>(tandem_rmsnorm_f32)),
    CHECK(tandem_rmsnorm_bf16, check_rmsnorm<Bf16>(tandem_rmsnorm_bf16)),
    CHECK(tandem_rmsnorm_f16, check_rmsnorm<F16>(tandem_rmsnorm_f16)),
    CHECK(tandem_layer_norm_f32, check_layer_norm<F32>(tandem_layer_norm_f32)),
    CHECK(tandem_layer_norm_bf16, check_layer_norm<Bf16>(tandem_layer_norm_bf16)),
    CHECK(tandem_layer_norm_f16, check_layer_norm<F16>(tandem_layer_norm_f16)),
    CHECK(tandem_rope_f32, check_rope(tandem_rope_f32)),
    CHECK(tandem_matmul_f32, check_matmul<F32>(tandem_matmul_f32)),
    CHECK(tandem_matmul_bf16, check_matmul<Bf16>(tandem_matmul_bf16)),
    CHECK(tandem_matmul_f16, check_matmul<F16>(tandem_matmul_f16)),
    CHECK(tandem_matmul_q8_0, check_matmul_quant(Q8_0, tandem_matmul_q8_0)),
    CHECK(tandem_matmul_q4_0, check_matmul_quant(Q4_0, tandem_matmul_q4_0)),
    CHECK(tandem_matmul_q4_k, check_matmul_quant(Q4_K, tandem_matmul_q4_k)),
    CHECK(tandem_matmul_q6_k, check_matmul_quant(Q6_K, tandem_matmul_q6_k)),
    CHECK(tandem_embedding_gather_q8_0, check_embedding_quant(Q8_0, tandem_embedding_gather_q8_0)),
    CHECK(tandem_embedding_gather_q4_0, check_embedding_quant(Q4_0, tandem_embedding_gather_q4_0)),
    CHECK(tandem_embedding_gather_q4_k, check_embedding_quant(Q4_K, tandem_embedding_gather_q4_k)),
    CHECK(tandem_embedding_gather_q6_k, check_embedding_quant(Q6_K, tandem_embedding_gather_q6_k)),
    CHECK(tandem_write_kv_f32, check_write_kv<float>(tandem_write_kv_f32)),
    CHECK(tandem_write_kv_bf16, check_write_kv<std::uint16_t>(tandem_write_kv_bf16)),
    CHECK(tandem_gather_rows_u32, check_gather<unsigned>(tandem_gather_rows_u32, gather_u32_shapes(), FILL_U32)),
    CHECK(tandem_scatter_rows_u32, check_scatter(tandem_scatter_rows_u32)),
    CHECK(tandem_gather_rows_u8, check_gather<unsigned char>(tandem_gather_rows_u8, gather_u8_shapes(), FILL_U8)),
    CHECK(tandem_attention_split_f32, check_attention<float>(tandem_attention_split_f32)),
    CHECK(tandem_attention_split_bf16, check_attention<std::uint16_t>(tandem_attention_split_bf16)),
    CHECK(tandem_attention_merge, check_attention_merge(tandem_attention_merge)),
    CHECK(tandem_softmax_f32, check_softmax(tandem_softmax_f32)),
    CHECK(tandem_argmax_f32, check_argmax(tandem_argmax_f32)),
    CHECK(tandem_logit_summary_f32, check_logit_summary(tandem_logit_summary_f32)),
    CHECK(tandem_select_rows_f32, check_select_rows(tandem_select_rows_f32)),
    CHECK(tandem_mix_logits_f32, check_mix_logits(tandem_mix_logits_f32)),
    CHECK(tandem_multiply_add_peak, check_multiply_add_peak(tandem_multiply_add_peak)),
    CHECK(tandem_uniform_f64, check_uniform(tandem_uniform_f64)),
    CHECK(tandem_sample_temperature_f32, check_sample(tandem_sample_temperature_f32)),
    CHECK(tandem_verify_chain_f32, check_verify_chain(tandem_verify_chain_f32)),
};
#undef CHECK

#if TANDEM_HOST_ASAN
// A sanitizer report ends the process: say which case was running.
void on_death() {
    std::fprintf(stderr, "kernel_check: a sanitizer stopped the run while checking %s, case [%s] (%s fiber order)\n",
                 st.kernel.c_str(), st.label.c_str(), tandem_host::fiber_order_reversed() ? "reverse" : "forward");
}
#endif
}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
        for (const Check& c : checks) std::printf("%s\n", c.name);
        return 0;
    }
    std::vector<std::string> only(argv + 1, argv + argc);
    for (const std::string& name : only) {
        bool known = false;
        for (const Check& c : checks) known = known || name == c.name;
        if (!known) {
            std::fprintf(stderr, "kernel_check: no check for a kernel named %s (kernel_check --list names them)\n", name.c_str());
            return 2;
        }
    }
#if TANDEM_HOST_ASAN
    __sanitizer_set_death_callback(on_death);
#endif
    std::printf("fiber order: %s\n", tandem_host::fiber_order_reversed() ? "reverse" : "forward");
    int failed = 0;
    for (const Check& c : checks) {
        if (!only.empty()) {
            bool wanted = false;
            for (const std::string& name : only) wanted = wanted || name == c.name;
            if (!wanted) continue;
        }
        st = State{};
        st.kernel = c.name;
        st.digest = 0xcbf29ce484222325ull;
        c.run();
        std::printf("kernel %s cases %d digest %016" PRIx64 " %s\n", c.name, st.cases, st.digest,
                    st.failures == 0 ? "ok" : "FAILED");
        std::fflush(stdout);
        if (st.failures != 0) failed++;
    }
    return failed == 0 ? 0 : 1;
}
