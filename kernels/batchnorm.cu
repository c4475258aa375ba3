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
// The statistics and the backward are reductions over a channel: one block per channel,
// a grid-stride loop over its M values, then a tree reduction in shared memory. Partial
// sums are kept in double for both element types, so float32 statistics of large batches
// do not drift. The blocks must have BN_THREADS threads (a power of two).

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

template <typename T>
__device__ void batch_norm_stats(const T* __restrict__ x, T* __restrict__ mean,
                                 T* __restrict__ var, int N, int C, long long S)
{
    __shared__ double buf[BN_THREADS];
    long long M = (long long)N * S;
    // A loop, not an if: the grid may hold fewer blocks than channels.
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        double sum = 0.0;
        for (ChannelWalk k(threadIdx.x, blockDim.x, S); k.n < N; k.next()) {
            sum += (double)x[(k.n * C + c) * S + k.s];
        }
        double mu = block_sum(sum, buf) / (double)M;
        // Second pass over the (cached) channel: sum of squared deviations, which keeps
        // its precision where E[x^2] - E[x]^2 would cancel.
        double sq = 0.0;
        for (ChannelWalk k(threadIdx.x, blockDim.x, S); k.n < N; k.next()) {
            double d = (double)x[(k.n * C + c) * S + k.s] - mu;
            sq += d * d;
        }
        double v = block_sum(sq, buf) / (double)M;
        if (threadIdx.x == 0) {
            mean[c] = (T)mu;
            var[c] = (T)v;
        }
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

template <typename T>
__device__ void batch_norm_backward(const T* __restrict__ gy, const T* __restrict__ x,
                                    const T* __restrict__ mean, const T* __restrict__ var,
                                    const T* __restrict__ weight, T eps,
                                    T* __restrict__ gx, T* __restrict__ gw,
                                    T* __restrict__ gb, int N, int C, long long S)
{
    __shared__ double buf[BN_THREADS];
    long long M = (long long)N * S;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        T mu = mean[c];
        T invstd = T(1) / sqrt(var[c] + eps);
        double sum_gy = 0.0, sum_gy_xhat = 0.0;
        for (ChannelWalk k(threadIdx.x, blockDim.x, S); k.n < N; k.next()) {
            long long at = (k.n * C + c) * S + k.s;
            double g = (double)gy[at];
            sum_gy += g;
            sum_gy_xhat += g * (double)((x[at] - mu) * invstd);
        }
        sum_gy = block_sum(sum_gy, buf);
        sum_gy_xhat = block_sum(sum_gy_xhat, buf);
        // Second pass: every value of the channel needs both channel sums.
        T mean_gy = (T)(sum_gy / (double)M);
        T mean_gy_xhat = (T)(sum_gy_xhat / (double)M);
        T scale = weight[c] * invstd;
        for (ChannelWalk k(threadIdx.x, blockDim.x, S); k.n < N; k.next()) {
            long long at = (k.n * C + c) * S + k.s;
            T xhat = (x[at] - mu) * invstd;
            gx[at] = scale * (gy[at] - mean_gy - xhat * mean_gy_xhat);
        }
        if (threadIdx.x == 0) {
            gw[c] = (T)sum_gy_xhat;
            gb[c] = (T)sum_gy;
        }
    }
}

extern "C" __global__ void batch_norm_stats_float(
    const float* __restrict__ x, float* __restrict__ mean, float* __restrict__ var,
    int N, int C, long long S)
{
    batch_norm_stats(x, mean, var, N, C, S);
}

extern "C" __global__ void batch_norm_stats_double(
    const double* __restrict__ x, double* __restrict__ mean, double* __restrict__ var,
    int N, int C, long long S)
{
    batch_norm_stats(x, mean, var, N, C, S);
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

extern "C" __global__ void batch_norm_backward_float(
    const float* __restrict__ gy, const float* __restrict__ x,
    const float* __restrict__ mean, const float* __restrict__ var,
    const float* __restrict__ weight, float eps, float* __restrict__ gx,
    float* __restrict__ gw, float* __restrict__ gb, int N, int C, long long S)
{
    batch_norm_backward(gy, x, mean, var, weight, eps, gx, gw, gb, N, C, S);
}

extern "C" __global__ void batch_norm_backward_double(
    const double* __restrict__ gy, const double* __restrict__ x,
    const double* __restrict__ mean, const double* __restrict__ var,
    const double* __restrict__ weight, double eps, double* __restrict__ gx,
    double* __restrict__ gw, double* __restrict__ gb, int N, int C, long long S)
{
    batch_norm_backward(gy, x, mean, var, weight, eps, gx, gw, gb, N, C, S);
}
