// Softmax cross-entropy over the rows of an (N, C) logit matrix, with integer targets.
//
// forward   m = max_j x[r, j],  s = log(sum_j exp(x[r, j] - m))   (lse = m + s, no overflow)
//           prob[r, j] = exp((x[r, j] - m) - s)
//           with the smoothed target q_j = (1 - eps) * [j == t] + eps / C:
//           loss[r] = -sum_j q_j (x[r, j] - lse)
//                   = (1 - eps) * ((m - x[r, t]) + s) + eps * ((m - sum_j x[r, j] / C) + s)
//           m - x[r, t] is taken first: lse - x[r, t] would lose s to rounding when the
//           logits are large (at 1e4 a float32 step is 1e-3). The smoothing term is added
//           only when eps > 0: a row with a -inf logit has sum_j x = -inf, and 0 * inf is NaN.
//           a row whose target is ignore_index has loss 0; a target outside [0, C) gives
//           NaN (the Python entry point checks the labels first).
// backward  g[r, j] = (prob[r, j] - q_j) * scale[r];   0 on ignored rows.
//           (scale is the upstream gradient of loss[r], already divided by the number
//           of counted rows for a mean reduction.)
//
// One block per row: three tree reductions in shared memory (max, sum of exp, sum of x).
// The blocks must have XENT_THREADS threads (a power of two).

#define XENT_THREADS 128

template <typename T>
__device__ T block_reduce(T v, T* buf, bool take_max)
{
    unsigned t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            T other = buf[t + half];
            buf[t] = take_max ? (other > buf[t] ? other : buf[t]) : buf[t] + other;
        }
        __syncthreads();
    }
    T total = buf[0];
    __syncthreads();  // buf is written again by the next call
    return total;
}

template <typename T>
__device__ void softmax_xent_forward(const T* __restrict__ logits,
                                     const long long* __restrict__ target,
                                     T* __restrict__ loss, T* __restrict__ prob,
                                     int N, int C, long long ignore_index, double smoothing)
{
    __shared__ T buf[XENT_THREADS];
    for (int r = blockIdx.x; r < N; r += gridDim.x) {
        const T* x = logits + (long long)r * C;
        T* p = prob + (long long)r * C;
        // Threads without a column start from x[0]: a neutral value for the maximum.
        T m = x[0];
        for (int j = threadIdx.x; j < C; j += blockDim.x) m = x[j] > m ? x[j] : m;
        m = block_reduce(m, buf, true);
        T sum_exp = T(0), sum_x = T(0);
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            sum_exp += exp(x[j] - m);
            sum_x += x[j];
        }
        sum_exp = block_reduce(sum_exp, buf, false);
        sum_x = block_reduce(sum_x, buf, false);
        T s = log(sum_exp);
        for (int j = threadIdx.x; j < C; j += blockDim.x) p[j] = exp((x[j] - m) - s);
        if (threadIdx.x == 0) {
            long long t = target[r];
            T value;
            if (t == ignore_index) {
                value = T(0);
            } else if (t < 0 || t >= C) {
                value = (T)__longlong_as_double(0x7FF8000000000000LL);  // NaN: label out of range
            } else {
                T eps = (T)smoothing;
                value = (T(1) - eps) * ((m - x[t]) + s);
                if (eps > T(0)) value += eps * ((m - sum_x / T(C)) + s);
            }
            loss[r] = value;
        }
    }
}

template <typename T>
__device__ void softmax_xent_backward(const T* __restrict__ prob,
                                      const long long* __restrict__ target,
                                      const T* __restrict__ scale, T* __restrict__ grad,
                                      long long total, int C, long long ignore_index,
                                      double smoothing)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long r = i / C;
        long long t = target[r];
        if (t == ignore_index) {
            grad[i] = T(0);
            continue;
        }
        T eps = (T)smoothing;
        T q = eps / T(C) + ((i % C) == t ? T(1) - eps : T(0));
        grad[i] = (prob[i] - q) * scale[r];
    }
}

extern "C" __global__ void softmax_xent_forward_float(
    const float* __restrict__ logits, const long long* __restrict__ target,
    float* __restrict__ loss, float* __restrict__ prob, int N, int C,
    long long ignore_index, double smoothing)
{
    softmax_xent_forward(logits, target, loss, prob, N, C, ignore_index, smoothing);
}

extern "C" __global__ void softmax_xent_forward_double(
    const double* __restrict__ logits, const long long* __restrict__ target,
    double* __restrict__ loss, double* __restrict__ prob, int N, int C,
    long long ignore_index, double smoothing)
{
    softmax_xent_forward(logits, target, loss, prob, N, C, ignore_index, smoothing);
}

extern "C" __global__ void softmax_xent_backward_float(
    const float* __restrict__ prob, const long long* __restrict__ target,
    const float* __restrict__ scale, float* __restrict__ grad, long long total, int C,
    long long ignore_index, double smoothing)
{
    softmax_xent_backward(prob, target, scale, grad, total, C, ignore_index, smoothing);
}

extern "C" __global__ void softmax_xent_backward_double(
    const double* __restrict__ prob, const long long* __restrict__ target,
    const double* __restrict__ scale, double* __restrict__ grad, long long total, int C,
    long long ignore_index, double smoothing)
{
    softmax_xent_backward(prob, target, scale, grad, total, C, ignore_index, smoothing);
}
