// Batch normalisation: channel statistics, normalise + affine, and the fused backward.
//
// x is seen as (N, C, S): S = H*W for an NCHW batch, 1 for an (N, C) batch; channel c
// holds the M = N*S values x[n, c, s] at (n*C + c)*S + s. With xhat = (x - mean) * invstd,
// invstd = 1/sqrt(var + eps):
//
// forward   mean[c] = sum(x) / M,  var[c] = sum((x - mean)^2) / M     (biased: training)
//           y = xhat * weight[c] + bias[c]
// backward  gb[c] = sum(gy),  gw[c] = sum(gy * xhat)
//           gx = weight[c] * invstd * (gy - gb[c]/M - xhat * gw[c]/M)
//
// The channel sums are split over many blocks: a grid of (splits, C) blocks, block
// (b, c) summing the b-th of `splits` equal runs of channel c's M values (a tree
// reduction in shared memory) into partial[c][b]. A second launch adds each channel's
// partials in a fixed order, so the result does not depend on timing. (One block per
// channel left most of the GPU idle: 64 channels are 64 blocks for 132 multiprocessors,
// each walking 200,000 values alone.)
//
// The statistics need one pass: each run sums d = x - K and d^2 for the channel's first
// value K, and var = (sum d^2 - (sum d)^2 / M) / M. Shifting by a value of the channel
// keeps sum d small, so the subtraction does not cancel as E[x^2] - E[x]^2 would (the
// "shifted data" algorithm); a constant channel gives d = 0 and a variance of exactly 0.
// Partial sums are kept in double for both element types, so float32 statistics of
// large batches do not drift. The blocks must have BN_THREADS threads (a power of two).

#define BN_THREADS 512

// The values of one channel that a thread owns: k = threadIdx.x, + blockDim.x, ... < N*S,
// with k = n*S + s tracked as (n, s) by additions (no 64-bit division per element).
struct ChannelWalk {
    long long n, s, step_n, step_s, S;
    __device__ ChannelWalk(long long start, long long step, long long S_)
        : n(start / S_), s(start % S_), step_n(step / S_), step_s(step % S_), S(S_) {}
    __device__ void next()
    {
        s += step_s;
        n += step_n;
        if (s >= S) {
            s -= S;
            ++n;
        }
    }
};

// The channel of element i = (n*C + c)*S + s of a grid-stride loop, as i advances by a
// constant step: (c, s) are updated by additions and one carry, not by two divisions.
struct ChannelOfIndex {
    long long s, S, step_s;
    int c, C, step_c;
    __device__ ChannelOfIndex(long long start, long long step, int C_, long long S_)
        : s(start % S_), S(S_), step_s(step % S_), c((int)((start / S_) % C_)), C(C_),
          step_c((int)((step / S_) % C_)) {}
    __device__ void next()
    {
        s += step_s;
        int carry = s >= S ? 1 : 0;
        s -= carry * S;
        c += step_c + carry;  // < 2*C: one wrap at most
        if (c >= C) c -= C;
    }
};

// Sum of v over the block; every thread gets the total. buf has blockDim.x slots.
__device__ double block_sum(double v, double* buf)
{
    unsigned t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) buf[t] += buf[t + half];
        __syncthreads();
    }
    double total = buf[0];
    __syncthreads();  // buf is written again by the next call
    return total;
}

// The run [begin, end) of a channel's M values that block b of `splits` sums.
__device__ void split_range(int b, int splits, long long M, long long* begin, long long* end)
{
    long long per = (M + splits - 1) / splits;
    *begin = b * per;
    *end = *begin + per < M ? *begin + per : M;
}

// partial[(c*splits + b)*2 + {0, 1}] = sum of d and of d^2 over run b of channel c,
// d = x - x[first value of channel c].
template <typename T>
__device__ void batch_norm_partial_stats(const T* __restrict__ x,
                                         double* __restrict__ partial, int N, int C,
                                         long long S, int splits)
{
    __shared__ double buf[BN_THREADS];
    long long M = (long long)N * S;
    // Loops, not ifs: the grid may hold fewer blocks than splits or channels.
    for (int c = blockIdx.y; c < C; c += gridDim.y) {
        double shift = (double)x[(long long)c * S];
        for (int b = blockIdx.x; b < splits; b += gridDim.x) {
            long long begin, end;
            split_range(b, splits, M, &begin, &end);
            double sum = 0.0, sum_sq = 0.0;
            ChannelWalk k(begin + threadIdx.x, blockDim.x, S);
            for (long long i = begin + threadIdx.x; i < end; i += blockDim.x, k.next()) {
                double d = (double)x[(k.n * C + c) * S + k.s] - shift;
                sum += d;
                sum_sq += d * d;
            }
            sum = block_sum(sum, buf);
            sum_sq = block_sum(sum_sq, buf);
            if (threadIdx.x == 0) {
                partial[((long long)c * splits + b) * 2] = sum;
                partial[((long long)c * splits + b) * 2 + 1] = sum_sq;
            }
        }
    }
}

// mean and biased variance of each channel from its partial sums (one thread a channel).
template <typename T>
__device__ void batch_norm_finish_stats(const T* __restrict__ x,
                                        const double* __restrict__ partial,
                                        T* __restrict__ mean, T* __restrict__ var, int N,
                                        int C, long long S, int splits)
{
    double M = (double)N * (double)S;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
        double sum = 0.0, sum_sq = 0.0;
        for (int b = 0; b < splits; ++b) {
            sum += partial[((long long)c * splits + b) * 2];
            sum_sq += partial[((long long)c * splits + b) * 2 + 1];
        }
        double v = (sum_sq - sum * sum / M) / M;
        mean[c] = (T)((double)x[(long long)c * S] + sum / M);
        var[c] = (T)(v > 0.0 ? v : 0.0);    // rounding can leave a tiny negative
    }
}

template <typename T>
__device__ void batch_norm_forward(const T* __restrict__ x, const T* __restrict__ mean,
                                   const T* __restrict__ var, const T* __restrict__ weight,
                                   const T* __restrict__ bias, T* __restrict__ y, T eps,
                                   long long total, int C, long long S)
{
    long long start = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long step = (long long)blockDim.x * gridDim.x;
    ChannelOfIndex ch(start, step, C, S);
    for (long long i = start; i < total; i += step, ch.next()) {
        int c = ch.c;
        T invstd = T(1) / sqrt(var[c] + eps);
        y[i] = (x[i] - mean[c]) * invstd * weight[c] + bias[c];
    }
}

// partial[(c*splits + b)*2 + {0, 1}] = sum of gy and of gy * xhat over run b of channel c.
template <typename T>
__device__ void batch_norm_partial_grads(const T* __restrict__ gy, const T* __restrict__ x,
                                         const T* __restrict__ mean,
                                         const T* __restrict__ var, T eps,
                                         double* __restrict__ partial, int N, int C,
                                         long long S, int splits)
{
    __shared__ double buf[BN_THREADS];
    long long M = (long long)N * S;
    for (int c = blockIdx.y; c < C; c += gridDim.y) {
        T mu = mean[c];
        T invstd = T(1) / sqrt(var[c] + eps);
        for (int b = blockIdx.x; b < splits; b += gridDim.x) {
            long long begin, end;
            split_range(b, splits, M, &begin, &end);
            double sum_gy = 0.0, sum_gy_xhat = 0.0;
            ChannelWalk k(begin + threadIdx.x, blockDim.x, S);
            for (long long i = begin + threadIdx.x; i < end; i += blockDim.x, k.next()) {
                long long at = (k.n * C + c) * S + k.s;
                double g = (double)gy[at];
                sum_gy += g;
                sum_gy_xhat += g * (double)((x[at] - mu) * invstd);
            }
            sum_gy = block_sum(sum_gy, buf);
            sum_gy_xhat = block_sum(sum_gy_xhat, buf);
            if (threadIdx.x == 0) {
                partial[((long long)c * splits + b) * 2] = sum_gy;
                partial[((long long)c * splits + b) * 2 + 1] = sum_gy_xhat;
            }
        }
    }
}

// gb and gw of each channel from its partial sums (one thread a channel).
template <typename T>
__device__ void batch_norm_finish_grads(const double* __restrict__ partial,
                                        T* __restrict__ gw, T* __restrict__ gb, int C,
                                        int splits)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
        double sum_gy = 0.0, sum_gy_xhat = 0.0;
        for (int b = 0; b < splits; ++b) {
            sum_gy += partial[((long long)c * splits + b) * 2];
            sum_gy_xhat += partial[((long long)c * splits + b) * 2 + 1];
        }
        gb[c] = (T)sum_gy;
        gw[c] = (T)sum_gy_xhat;
    }
}

// gx = weight[c] * invstd * (gy - gb[c]/M - xhat * gw[c]/M), one thread per value.
template <typename T>
__device__ void batch_norm_input_grad(const T* __restrict__ gy, const T* __restrict__ x,
                                      const T* __restrict__ mean, const T* __restrict__ var,
                                      const T* __restrict__ weight, T eps,
                                      const T* __restrict__ gw, const T* __restrict__ gb,
                                      T* __restrict__ gx, long long total, int C,
                                      long long S)
{
    T M = (T)(total / C);
    long long start = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long step = (long long)blockDim.x * gridDim.x;
    ChannelOfIndex ch(start, step, C, S);
    for (long long i = start; i < total; i += step, ch.next()) {
        int c = ch.c;
        T invstd = T(1) / sqrt(var[c] + eps);
        T xhat = (x[i] - mean[c]) * invstd;
        gx[i] = weight[c] * invstd * (gy[i] - gb[c] / M - xhat * (gw[c] / M));
    }
}

extern "C" __global__ void batch_norm_partial_stats_float(
    const float* __restrict__ x, double* __restrict__ partial, int N, int C, long long S,
    int splits)
{
    batch_norm_partial_stats(x, partial, N, C, S, splits);
}

extern "C" __global__ void batch_norm_finish_stats_float(
    const float* __restrict__ x, const double* __restrict__ partial, float* __restrict__ mean,
    float* __restrict__ var, int N, int C, long long S, int splits)
{
    batch_norm_finish_stats(x, partial, mean, var, N, C, S, splits);
}

extern "C" __global__ void batch_norm_partial_stats_double(
    const double* __restrict__ x, double* __restrict__ partial, int N, int C, long long S,
    int splits)
{
    batch_norm_partial_stats(x, partial, N, C, S, splits);
}

extern "C" __global__ void batch_norm_finish_stats_double(
    const double* __restrict__ x, const double* __restrict__ partial, double* __restrict__ mean,
    double* __restrict__ var, int N, int C, long long S, int splits)
{
    batch_norm_finish_stats(x, partial, mean, var, N, C, S, splits);
}

extern "C" __global__ void batch_norm_forward_float(
    const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ weight,
    const float* __restrict__ bias, float* __restrict__ y, float eps, long long total,
    int C, long long S)
{
    batch_norm_forward(x, mean, var, weight, bias, y, eps, total, C, S);
}

extern "C" __global__ void batch_norm_forward_double(
    const double* __restrict__ x, const double* __restrict__ mean,
    const double* __restrict__ var, const double* __restrict__ weight,
    const double* __restrict__ bias, double* __restrict__ y, double eps, long long total,
    int C, long long S)
{
    batch_norm_forward(x, mean, var, weight, bias, y, eps, total, C, S);
}

extern "C" __global__ void batch_norm_partial_grads_float(
    const float* __restrict__ gy, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, float eps, double* __restrict__ partial, int N, int C,
    long long S, int splits)
{
    batch_norm_partial_grads(gy, x, mean, var, eps, partial, N, C, S, splits);
}

extern "C" __global__ void batch_norm_finish_grads_float(
    const double* __restrict__ partial, float* __restrict__ gw, float* __restrict__ gb, int C,
    int splits)
{
    batch_norm_finish_grads(partial, gw, gb, C, splits);
}

extern "C" __global__ void batch_norm_input_grad_float(
    const float* __restrict__ gy, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ weight, float eps,
    const float* __restrict__ gw, const float* __restrict__ gb, float* __restrict__ gx,
    long long total, int C, long long S)
{
    batch_norm_input_grad(gy, x, mean, var, weight, eps, gw, gb, gx, total, C, S);
}

extern "C" __global__ void batch_norm_partial_grads_double(
    const double* __restrict__ gy, const double* __restrict__ x, const double* __restrict__ mean,
    const double* __restrict__ var, double eps, double* __restrict__ partial, int N, int C,
    long long S, int splits)
{
    batch_norm_partial_grads(gy, x, mean, var, eps, partial, N, C, S, splits);
}

extern "C" __global__ void batch_norm_finish_grads_double(
    const double* __restrict__ partial, double* __restrict__ gw, double* __restrict__ gb, int C,
    int splits)
{
    batch_norm_finish_grads(partial, gw, gb, C, splits);
}

extern "C" __global__ void batch_norm_input_grad_double(
    const double* __restrict__ gy, const double* __restrict__ x, const double* __restrict__ mean,
    const double* __restrict__ var, const double* __restrict__ weight, double eps,
    const double* __restrict__ gw, const double* __restrict__ gb, double* __restrict__ gx,
    long long total, int C, long long S)
{
    batch_norm_input_grad(gy, x, mean, var, weight, eps, gw, gb, gx, total, C, S);
}
