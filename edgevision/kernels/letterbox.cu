// Letterbox + colour order + scale/normalise + HWC->NCHW in one pass, for the TensorRT input.
// One thread per output pixel. Twin: edgevision/kernels/letterbox_ref.py (same arithmetic).
//
// src:  uint8 [h, w, 3] BGR, row pitch `src_pitch` bytes (a decoded frame in device memory)
// dst:  float [3, out_h, out_w] (one image of the NCHW batch)
// The content region [top, top+new_h) x [left, left+new_w) is bilinearly resampled with
// half-pixel centres and edge clamping, as cv2.resize(INTER_LINEAR) does, and rounded to
// an integer level so the network sees the same pixels as on the CPU path.
extern "C" __global__ void letterbox_bgr_to_nchw(
    const unsigned char* __restrict__ src, int w, int h, int src_pitch,
    float* __restrict__ dst, int out_w, int out_h,
    int left, int top, int new_w, int new_h,
    float pad_value, int swap_rb, float scale,
    float mean0, float mean1, float mean2, float inv_std0, float inv_std1, float inv_std2)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;

    float v[3] = {pad_value, pad_value, pad_value};  // B, G, R
    const int cx = x - left, cy = y - top;
    if (cx >= 0 && cx < new_w && cy >= 0 && cy < new_h) {
        const float sx = (cx + 0.5f) * ((float)w / (float)new_w) - 0.5f;
        const float sy = (cy + 0.5f) * ((float)h / (float)new_h) - 0.5f;
        int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
        float fx = sx - (float)x0, fy = sy - (float)y0;
        if (x0 < 0) { x0 = 0; fx = 0.f; }
        if (y0 < 0) { y0 = 0; fy = 0.f; }
        if (x0 >= w - 1) { x0 = w - 1; fx = 0.f; }
        if (y0 >= h - 1) { y0 = h - 1; fy = 0.f; }
        const int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
        const unsigned char* r0 = src + (size_t)y0 * src_pitch;
        const unsigned char* r1 = src + (size_t)y1 * src_pitch;
        #pragma unroll
        for (int c = 0; c < 3; ++c) {
            const float top_row = r0[x0 * 3 + c] * (1.f - fx) + r0[x1 * 3 + c] * fx;
            const float bot_row = r1[x0 * 3 + c] * (1.f - fx) + r1[x1 * 3 + c] * fx;
            v[c] = rintf(top_row * (1.f - fy) + bot_row * fy);
        }
    }
    const size_t plane = (size_t)out_w * out_h, at = (size_t)y * out_w + x;
    const float c0 = swap_rb ? v[2] : v[0], c2 = swap_rb ? v[0] : v[2];
    dst[at] = (c0 * scale - mean0) * inv_std0;
    dst[plane + at] = (v[1] * scale - mean1) * inv_std1;
    dst[2 * plane + at] = (c2 * scale - mean2) * inv_std2;
}
