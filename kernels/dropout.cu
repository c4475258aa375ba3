// Dropout from a seed: a counter-based random mask, then y = x * mask / (1 - p).
//
// Element i of a call with (seed, offset) draws the (offset + i + 1)-th number of the
// SplitMix64 stream whose state starts at key = mix(seed + golden): the state after k
// steps is key + k * golden, so every thread jumps straight to its own number and the
// mask depends only on (seed, offset, i): reproducible, and the same on every GPU and in
// the NumPy twin of this hash (tests/test_kernels.py recomputes it bit for bit).
//
// u = top 53 bits / 2^53 is uniform in [0, 1); the element is kept when u >= p, so each
// element survives with probability 1 - p.
//
// forward   mask = (u >= p),  y = mask ? x / q : 0      with q = 1 - p in x's type
// backward  gx = mask ? gy / q : 0
// (x * mask / (1 - p) in NumPy rounds the same way: the product by 0 or 1 is exact.)

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

// The SplitMix64 output function (Steele, Lea and Flood, 2014): a bijective avalanche mix.
__device__ unsigned long long splitmix64_mix(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ bool dropout_keep(unsigned long long seed, unsigned long long counter, double p)
{
    unsigned long long key = splitmix64_mix(seed + GOLDEN_GAMMA);
    unsigned long long bits = splitmix64_mix(key + (counter + 1ULL) * GOLDEN_GAMMA);
    double u = (double)(bits >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
    return u >= p;
}

extern "C" __global__ void dropout_mask(bool* __restrict__ mask, long long total,
                                        unsigned long long seed, unsigned long long offset,
                                        double p)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        mask[i] = dropout_keep(seed, offset + (unsigned long long)i, p);
    }
}

template <typename T>
__device__ void dropout_forward(const T* __restrict__ x, T* __restrict__ y,
                                bool* __restrict__ mask, long long total,
                                unsigned long long seed, unsigned long long offset,
                                double p, T q)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        bool keep = dropout_keep(seed, offset + (unsigned long long)i, p);
        mask[i] = keep;
        y[i] = keep ? x[i] / q : T(0);
    }
}

template <typename T>
__device__ void dropout_backward(const T* __restrict__ gy, const bool* __restrict__ mask,
                                 T* __restrict__ gx, long long total, T q)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        gx[i] = mask[i] ? gy[i] / q : T(0);
    }
}

extern "C" __global__ void dropout_forward_float(
    const float* __restrict__ x, float* __restrict__ y, bool* __restrict__ mask,
    long long total, unsigned long long seed, unsigned long long offset, double p, float q)
{
    dropout_forward(x, y, mask, total, seed, offset, p, q);
}

extern "C" __global__ void dropout_forward_double(
    const double* __restrict__ x, double* __restrict__ y, bool* __restrict__ mask,
    long long total, unsigned long long seed, unsigned long long offset, double p, double q)
{
    dropout_forward(x, y, mask, total, seed, offset, p, q);
}

extern "C" __global__ void dropout_backward_float(
    const float* __restrict__ gy, const bool* __restrict__ mask, float* __restrict__ gx,
    long long total, float q)
{
    dropout_backward(gy, mask, gx, total, q);
}

extern "C" __global__ void dropout_backward_double(
    const double* __restrict__ gy, const bool* __restrict__ mask, double* __restrict__ gx,
    long long total, double q)
{
    dropout_backward(gy, mask, gx, total, q);
}
