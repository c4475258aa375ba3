// Max and average pooling over (kh, kw) windows of an NCHW batch, forward and backward.
//
// x (N, C, H, W) -> y (N, C, OH, OW); the window of output (oh, ow) starts at
// (oh*sh - ph, ow*sw - pw) and its cell (i, j) reads x at (+ i*dh, + j*dw).
// OH and OW come from the launcher (PyTorch's rule, ceil_mode included).
//
// Max pooling: padding counts as -inf, so it never wins (a window of padding alone gives
// -inf, with argmax -1, as the NumPy path's -inf padding does); the winner is the first maximum
// in row-major window order (as argmax does), and a NaN wins over any number; with several
// NaNs the last one wins, as in PyTorch (whose scan takes every NaN it meets) and the
// NumPy path of minidl.ops.pool. argmax holds the winner as a flat index h*W + w into the
// (H, W) plane: PyTorch's return_indices convention. The backward scatters gy to the
// winners; windows overlap when stride < kernel, so the scatter adds atomically.
//
// Average pooling follows PyTorch: the window is clipped to the padded input
// (H + ph, W + pw) for the divisor when count_include_pad, to the input itself otherwise;
// cells added by ceil_mode never count; divisor_override > 0 replaces the divisor.
// The backward is a gather: each input pixel adds gy/divisor of every window covering it.

template <typename T>
__device__ void max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y,
                                   long long* __restrict__ argmax, long long total,
                                   int H, int W, int OH, int OW, int kh, int kw,
                                   int sh, int sw, int ph, int pw, int dh, int dw)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        int ow = (int)(i % OW);
        int oh = (int)((i / OW) % OH);
        const T* plane = x + (i / ((long long)OW * OH)) * H * W;
        int h0 = oh * sh - ph, w0 = ow * sw - pw;
        long long best_index = -1;
        T best = -T(__int_as_float(0x7f800000));  // -inf: the answer for a window of padding
        for (int ki = 0; ki < kh; ++ki) {
            int h = h0 + ki * dh;
            if (h < 0 || h >= H) continue;
            for (int kj = 0; kj < kw; ++kj) {
                int w = w0 + kj * dw;
                if (w < 0 || w >= W) continue;
                T v = plane[h * W + w];
                // v != v is the NaN test that needs no header.
                bool wins = best_index < 0 || v > best || v != v;
                if (wins) {
                    best = v;
                    best_index = (long long)h * W + w;
                }
            }
        }
        y[i] = best;
        argmax[i] = best_index;
    }
}

template <typename T>
__device__ void max_pool2d_backward(const T* __restrict__ gy,
                                    const long long* __restrict__ argmax,
                                    T* __restrict__ gx, long long total,
                                    long long out_plane, long long in_plane)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long winner = argmax[i];
        if (winner >= 0) {
            // Overlapping windows can share a winner: add atomically.
            atomicAdd(gx + (i / out_plane) * in_plane + winner, gy[i]);
        }
    }
}

// The divisor of output (oh, ow): PyTorch's avg_pool2d rule.
__device__ int avg_pool2d_divisor(int oh, int ow, int H, int W, int kh, int kw,
                                  int sh, int sw, int ph, int pw,
                                  int count_include_pad, int divisor_override)
{
    if (divisor_override > 0) return divisor_override;
    int h0 = oh * sh - ph, w0 = ow * sw - pw;
    // Clip to the padded input: cells that ceil_mode adds beyond it never count.
    int h1 = min(h0 + kh, H + ph), w1 = min(w0 + kw, W + pw);
    if (count_include_pad) return (h1 - h0) * (w1 - w0);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    h1 = min(h1, H);
    w1 = min(w1, W);
    return (h1 - h0) * (w1 - w0);
}

template <typename T>
__device__ void avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y,
                                   long long total, int H, int W, int OH, int OW,
                                   int kh, int kw, int sh, int sw, int ph, int pw,
                                   int count_include_pad, int divisor_override)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        int ow = (int)(i % OW);
        int oh = (int)((i / OW) % OH);
        const T* plane = x + (i / ((long long)OW * OH)) * H * W;
        int h0 = oh * sh - ph, w0 = ow * sw - pw;
        T sum = T(0);
        for (int h = max(h0, 0); h < min(h0 + kh, H); ++h) {
            for (int w = max(w0, 0); w < min(w0 + kw, W); ++w) {
                sum += plane[h * W + w];
            }
        }
        int divisor = avg_pool2d_divisor(oh, ow, H, W, kh, kw, sh, sw, ph, pw,
                                         count_include_pad, divisor_override);
        y[i] = sum / T(divisor);
    }
}

template <typename T>
__device__ void avg_pool2d_backward(const T* __restrict__ gy, T* __restrict__ gx,
                                    long long total, int H, int W, int OH, int OW,
                                    int kh, int kw, int sh, int sw, int ph, int pw,
                                    int count_include_pad, int divisor_override)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        int w = (int)(i % W);
        int h = (int)((i / W) % H);
        const T* g = gy + (i / ((long long)W * H)) * OH * OW;
        // Windows oh with oh*sh - ph <= h < oh*sh - ph + kh cover row h.
        int oh_first = h + ph - kh + 1 > 0 ? (h + ph - kh + 1 + sh - 1) / sh : 0;
        int oh_last = min((h + ph) / sh, OH - 1);
        int ow_first = w + pw - kw + 1 > 0 ? (w + pw - kw + 1 + sw - 1) / sw : 0;
        int ow_last = min((w + pw) / sw, OW - 1);
        T sum = T(0);
        for (int oh = oh_first; oh <= oh_last; ++oh) {
            for (int ow = ow_first; ow <= ow_last; ++ow) {
                int divisor = avg_pool2d_divisor(oh, ow, H, W, kh, kw, sh, sw, ph, pw,
                                                 count_include_pad, divisor_override);
                sum += g[oh * OW + ow] / T(divisor);
            }
        }
        gx[i] = sum;
    }
}

extern "C" __global__ void max_pool2d_forward_float(
    const float* __restrict__ x, float* __restrict__ y, long long* __restrict__ argmax,
    long long total, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw,
    int ph, int pw, int dh, int dw)
{
    max_pool2d_forward(x, y, argmax, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw);
}

extern "C" __global__ void max_pool2d_forward_double(
    const double* __restrict__ x, double* __restrict__ y, long long* __restrict__ argmax,
    long long total, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw,
    int ph, int pw, int dh, int dw)
{
    max_pool2d_forward(x, y, argmax, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw);
}

extern "C" __global__ void max_pool2d_backward_float(
    const float* __restrict__ gy, const long long* __restrict__ argmax,
    float* __restrict__ gx, long long total, long long out_plane, long long in_plane)
{
    max_pool2d_backward(gy, argmax, gx, total, out_plane, in_plane);
}

extern "C" __global__ void max_pool2d_backward_double(
    const double* __restrict__ gy, const long long* __restrict__ argmax,
    double* __restrict__ gx, long long total, long long out_plane, long long in_plane)
{
    max_pool2d_backward(gy, argmax, gx, total, out_plane, in_plane);
}

extern "C" __global__ void avg_pool2d_forward_float(
    const float* __restrict__ x, float* __restrict__ y, long long total, int H, int W,
    int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override)
{
    avg_pool2d_forward(x, y, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                       count_include_pad, divisor_override);
}

extern "C" __global__ void avg_pool2d_forward_double(
    const double* __restrict__ x, double* __restrict__ y, long long total, int H, int W,
    int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override)
{
    avg_pool2d_forward(x, y, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                       count_include_pad, divisor_override);
}

extern "C" __global__ void avg_pool2d_backward_float(
    const float* __restrict__ gy, float* __restrict__ gx, long long total, int H, int W,
    int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override)
{
    avg_pool2d_backward(gy, gx, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                        count_include_pad, divisor_override);
}

extern "C" __global__ void avg_pool2d_backward_double(
    const double* __restrict__ gy, double* __restrict__ gx, long long total, int H, int W,
    int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override)
{
    avg_pool2d_backward(gy, gx, total, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                        count_include_pad, divisor_override);
}
