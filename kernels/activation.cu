// Elementwise activations and their derivatives, one value at a time.
//
// These are the bodies of the cupy.ElementwiseKernels built in activation.py: the file is
// their preamble, so the math lives here beside the other kernels (and nvcc checks it),
// while CuPy writes the loop, the broadcasting and the float/double instantiation.
//
// forward                                   backward (gy is the upstream gradient)
// relu(x)       = max(x, 0)                 gy * [x > 0]
// leaky_relu(x) = x > 0 ? x : slope * x     gy * (x > 0 ? 1 : slope)
// sigmoid(x)    = 1 / (1 + exp(-x))         gy * y * (1 - y)          (from the output y)
// tanh(x)                                   gy * (1 - y^2)            (from the output y)
// gelu(x)       = x * Phi(x)                gy * (Phi(x) + x * phi(x))
//               Phi(x) = (1 + erf(x / sqrt(2))) / 2,  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// gelu_tanh(x)  = x/2 * (1 + tanh(k (x + 0.044715 x^3))),  k = sqrt(2 / pi)
//               (PyTorch's approximate='tanh')

template <typename T>
__device__ T relu_forward(T x)
{
    return x < T(0) ? T(0) : x;  // written so that NaN passes through, as in max(x, 0)
}

template <typename T>
__device__ T relu_backward(T x, T gy)
{
    return x > T(0) ? gy : T(0);
}

template <typename T>
__device__ T leaky_relu_forward(T x, T slope)
{
    return x > T(0) ? x : x * slope;
}

template <typename T>
__device__ T leaky_relu_backward(T x, T gy, T slope)
{
    return x > T(0) ? gy : gy * slope;
}

template <typename T>
__device__ T sigmoid_forward(T x)
{
    // exp of a negative number only: no overflow for large |x|.
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    T e = exp(x);
    return e / (T(1) + e);
}

template <typename T>
__device__ T sigmoid_backward(T y, T gy)
{
    return gy * y * (T(1) - y);
}

template <typename T>
__device__ T tanh_forward(T x)
{
    return tanh(x);
}

template <typename T>
__device__ T tanh_backward(T y, T gy)
{
    return gy * (T(1) - y * y);
}

template <typename T>
__device__ T gelu_forward(T x)
{
    return x * T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
}

template <typename T>
__device__ T gelu_backward(T x, T gy)
{
    T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
    T pdf = exp(T(-0.5) * x * x) * T(0.39894228040143267794);  // 1 / sqrt(2 pi)
    return gy * (cdf + x * pdf);
}

template <typename T>
__device__ T gelu_tanh_forward(T x)
{
    T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + tanh(inner));
}

template <typename T>
__device__ T gelu_tanh_backward(T x, T gy)
{
    T k = T(0.79788456080286535588);
    T th = tanh(k * (x + T(0.044715) * x * x * x));
    T dinner = k * (T(1) + T(3 * 0.044715) * x * x);
    return gy * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * dinner);
}

// Explicit float and double instantiations, so that a plain `nvcc -ptx activation.cu`
// (CI) compiles every body for both element types. As the preamble of an
// ElementwiseKernel (activation.py defines MINIDL_ELEMENTWISE_PREAMBLE) they are left out:
// CuPy instantiates what its loops call.
#ifndef MINIDL_ELEMENTWISE_PREAMBLE
#define MINIDL_INSTANTIATE_ACTIVATIONS(T)                           \
    template __device__ T relu_forward<T>(T);                     \
    template __device__ T relu_backward<T>(T, T);                 \
    template __device__ T leaky_relu_forward<T>(T, T);            \
    template __device__ T leaky_relu_backward<T>(T, T, T);        \
    template __device__ T sigmoid_forward<T>(T);                  \
    template __device__ T sigmoid_backward<T>(T, T);              \
    template __device__ T tanh_forward<T>(T);                     \
    template __device__ T tanh_backward<T>(T, T);                 \
    template __device__ T gelu_forward<T>(T);                     \
    template __device__ T gelu_backward<T>(T, T);                 \
    template __device__ T gelu_tanh_forward<T>(T);                \
    template __device__ T gelu_tanh_backward<T>(T, T);
MINIDL_INSTANTIATE_ACTIVATIONS(float)
MINIDL_INSTANTIATE_ACTIVATIONS(double)
#endif
