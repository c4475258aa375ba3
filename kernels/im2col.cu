// im2col and col2im: the data movement that turns a convolution into one matrix product.
//
// x     (N, C, H, W)                    the input batch, C-contiguous
// cols  (N, C, kh, kw, OH, OW)          cols[n, c, i, j, oh, ow] = x[n, c, h, w] with
//                                       h = oh*sh - ph + i*dh,  w = ow*sw - pw + j*dw,
//                                       and 0 where (h, w) falls in the zero padding.
// cols is stored in the memory order (C, kh, kw, N, OH, OW), as the NumPy im2col of
// minidl.ops.conv does: viewed as a (C*kh*kw, N*OH*OW) matrix it is the GEMM operand of
// conv2d without a copy. ph and pw are the top and left padding; OH and OW (which the
// bottom and right padding decide) come from the launcher.
//
// col2im is the adjoint (the backward of im2col): every input pixel gathers the column
// entries it was copied to. Each thread owns one output element, so no atomics are needed.
//
// Compiled by NVRTC through cupy.RawModule: no host headers. Every kernel is a template
// over the element type with a grid-stride loop; the extern "C" entry points at the end of
// the file are the names Python loads (one per element type).

template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long total,
                       int N, int C, int H, int W, int kh, int kw, int OH, int OW,
                       int sh, int sw, int ph, int pw, int dh, int dw)
{
    // One thread per window (c, n, oh, ow), total = C*N*OH*OW: it copies the kh*kw cells
    // of its window, so the index arithmetic (divisions) is paid once per window, not
    // once per copied value. Neighbouring threads (ow fastest) write neighbouring
    // addresses of each (ki, kj) slice of cols.
    long long slice = (long long)N * OH * OW;  // distance between two (ki, kj) slices
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        int ow = (int)(i % OW);
        int oh = (int)((i / OW) % OH);
        long long nc = i / ((long long)OW * OH);  // = c*N + n
        int n = (int)(nc % N);
        int c = (int)(nc / N);
        const T* plane = x + ((long long)n * C + c) * H * W;
        T* out = cols + (long long)c * kh * kw * slice + (long long)n * OH * OW
                 + (long long)oh * OW + ow;
        for (int ki = 0; ki < kh; ++ki) {
            int h = oh * sh - ph + ki * dh;
            for (int kj = 0; kj < kw; ++kj) {
                int w = ow * sw - pw + kj * dw;
                bool inside = h >= 0 && h < H && w >= 0 && w < W;
                out[(ki * kw + kj) * slice] = inside ? plane[(long long)h * W + w] : T(0);
            }
        }
    }
}

template <typename T>
__device__ void col2im(const T* __restrict__ cols, T* __restrict__ gx, long long total,
                       int N, int C, int H, int W, int kh, int kw, int OH, int OW,
                       int sh, int sw, int ph, int pw, int dh, int dw)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        int w = (int)(i % W);
        int h = (int)((i / W) % H);
        int c = (int)((i / ((long long)W * H)) % C);
        int n = (int)(i / ((long long)W * H * C));
        // The (OH, OW) plane of channel c, offset (0, 0) and sample n; the planes of the
        // other offsets follow at a stride of N*OH*OW.
        const T* col = cols + ((long long)c * kh * kw * N + n) * OH * OW;
        long long offset_stride = (long long)N * OH * OW;
        T sum = T(0);
        // Kernel offsets in the same order as a loop over (ki, kj) adding strided slices,
        // so the sum is rounded exactly like the NumPy col2im.
        for (int ki = 0; ki < kh; ++ki) {
            int y = h + ph - ki * dh;          // = oh * sh for the window that saw (h, w)
            if (y < 0 || y % sh != 0) continue;
            int oh = y / sh;
            if (oh >= OH) continue;
            for (int kj = 0; kj < kw; ++kj) {
                int z = w + pw - kj * dw;
                if (z < 0 || z % sw != 0) continue;
                int ow = z / sw;
                if (ow >= OW) continue;
                sum += col[(ki * kw + kj) * offset_stride + (long long)oh * OW + ow];
            }
        }
        gx[i] = sum;
    }
}

extern "C" __global__ void im2col_float(
    const float* __restrict__ x, float* __restrict__ cols, long long total, int N, int C,
    int H, int W, int kh, int kw, int OH, int OW, int sh, int sw, int ph, int pw,
    int dh, int dw)
{
    im2col(x, cols, total, N, C, H, W, kh, kw, OH, OW, sh, sw, ph, pw, dh, dw);
}

extern "C" __global__ void im2col_double(
    const double* __restrict__ x, double* __restrict__ cols, long long total, int N, int C,
    int H, int W, int kh, int kw, int OH, int OW, int sh, int sw, int ph, int pw,
    int dh, int dw)
{
    im2col(x, cols, total, N, C, H, W, kh, kw, OH, OW, sh, sw, ph, pw, dh, dw);
}

extern "C" __global__ void col2im_float(
    const float* __restrict__ cols, float* __restrict__ gx, long long total, int N, int C,
    int H, int W, int kh, int kw, int OH, int OW, int sh, int sw, int ph, int pw,
    int dh, int dw)
{
    col2im(cols, gx, total, N, C, H, W, kh, kw, OH, OW, sh, sw, ph, pw, dh, dw);
}

extern "C" __global__ void col2im_double(
    const double* __restrict__ cols, double* __restrict__ gx, long long total, int N, int C,
    int H, int W, int kh, int kw, int OH, int OW, int sh, int sw, int ph, int pw,
    int dh, int dw)
{
    col2im(cols, gx, total, N, C, H, W, kh, kw, OH, OW, sh, sw, ph, pw, dh, dw);
}
