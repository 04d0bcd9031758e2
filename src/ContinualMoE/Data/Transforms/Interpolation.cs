namespace ContinualMoE.Data.Transforms;

/// <summary>Bilinear / Bicubic: torch's <c>interpolate</c> without antialiasing (the project's resampler).
/// PilBilinear / PilBicubic: PIL's <c>Image.resize</c> as torchvision applies it to PIL images in the official pipelines
/// (see <see cref="PilResampling"/>).</summary>
public enum ResampleMode { Bilinear, Bicubic, PilBilinear, PilBicubic }

/// <summary>
/// Resampling with the semantics of <c>torch.nn.functional.interpolate(..., align_corners=False, antialias=False)</c>:
/// output pixel i samples source coordinate (i + 0.5) * inSize / outSize - 0.5. Bilinear clamps that coordinate at 0
/// (as torch does); bicubic uses the cubic convolution kernel with A = -0.75 (torch's choice) and clamps the taps to the
/// border. Bicubic output is clamped to [0, MaxValue] since the kernel can overshoot.
/// </summary>
public static class Interpolation
{
    private const float CubicA = -0.75f;

    public static ImageBuffer Resize(ImageBuffer image, int height, int width, ResampleMode mode)
    {
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), "resize target must be positive");
        if (height == image.Height && width == image.Width) return image;
        if (mode is ResampleMode.PilBilinear or ResampleMode.PilBicubic) return PilResampling.Resize(image, height, width, mode == ResampleMode.PilBicubic);
        var output = image.Rent(image.Channels, height, width);
        if (mode == ResampleMode.Bilinear) Bilinear(image, height, width, output.Data);
        else Bicubic(image, height, width, output.Data);
        return output;
    }

    private static float SourceCoordinate(int outIndex, int inSize, int outSize) =>
        (outIndex + 0.5f) * ((float)inSize / outSize) - 0.5f;

    private static void Bilinear(ImageBuffer image, int outH, int outW, float[] output)
    {
        int inH = image.Height, inW = image.Width;
        // Precompute the two taps and weights per output column and row; shared by all channels.
        var x0 = new int[outW]; var x1 = new int[outW]; var wx = new float[outW];
        for (var x = 0; x < outW; x++)
        {
            var sx = Math.Max(SourceCoordinate(x, inW, outW), 0f);
            x0[x] = Math.Min((int)sx, inW - 1);
            x1[x] = Math.Min(x0[x] + 1, inW - 1);
            wx[x] = sx - x0[x];
        }
        BilinearRows(image.Data, image.Channels, inH, inW, outH, outW, x0, x1, wx, output);
    }

    /// <summary>The bilinear inner loops without bounds checks (every index is clamped into the image above).</summary>
    private static unsafe void BilinearRows(float[] source, int channels, int inH, int inW, int outH, int outW,
        int[] x0, int[] x1, float[] wx, float[] output)
    {
        fixed (float* data = source)
        fixed (float* target = output)
        fixed (int* left = x0)
        fixed (int* right = x1)
        fixed (float* weight = wx)
        {
            for (var y = 0; y < outH; y++)
            {
                var sy = Math.Max(SourceCoordinate(y, inH, outH), 0f);
                var y0 = Math.Min((int)sy, inH - 1);
                var y1 = Math.Min(y0 + 1, inH - 1);
                var wy = sy - y0;
                for (var c = 0; c < channels; c++)
                {
                    var plane = c * inH * inW;
                    float* row0 = data + plane + y0 * inW, row1 = data + plane + y1 * inW;
                    var outRow = target + (c * outH + y) * outW;
                    for (var x = 0; x < outW; x++)
                    {
                        var top = row0[left[x]] + (row0[right[x]] - row0[left[x]]) * weight[x];
                        var bottom = row1[left[x]] + (row1[right[x]] - row1[left[x]]) * weight[x];
                        outRow[x] = top + (bottom - top) * wy;
                    }
                }
            }
        }
    }

    private static void CubicWeights(float t, Span<float> w)
    {
        // Keys' cubic convolution kernel evaluated at distances 1+t, t, 1-t, 2-t.
        static float Near(float d) => ((CubicA + 2) * d - (CubicA + 3)) * d * d + 1;
        static float Far(float d) => ((CubicA * d - 5 * CubicA) * d + 8 * CubicA) * d - 4 * CubicA;
        w[0] = Far(t + 1);
        w[1] = Near(t);
        w[2] = Near(1 - t);
        w[3] = Far(2 - t);
    }

    private static void Bicubic(ImageBuffer image, int outH, int outW, float[] output)
    {
        int inH = image.Height, inW = image.Width;
        var xTaps = new int[outW * 4]; var xWeights = new float[outW * 4];
        Span<float> w = stackalloc float[4];
        for (var x = 0; x < outW; x++)
        {
            var sx = SourceCoordinate(x, inW, outW);
            var ix = (int)MathF.Floor(sx);
            CubicWeights(sx - ix, w);
            for (var k = 0; k < 4; k++)
            {
                xTaps[x * 4 + k] = Math.Clamp(ix - 1 + k, 0, inW - 1);
                xWeights[x * 4 + k] = w[k];
            }
        }
        var data = image.Data;
        var max = image.MaxValue;
        Span<int> yTaps = stackalloc int[4];
        for (var y = 0; y < outH; y++)
        {
            var sy = SourceCoordinate(y, inH, outH);
            var iy = (int)MathF.Floor(sy);
            CubicWeights(sy - iy, w);
            for (var k = 0; k < 4; k++) yTaps[k] = Math.Clamp(iy - 1 + k, 0, inH - 1);
            for (var c = 0; c < image.Channels; c++)
            {
                var plane = c * inH * inW;
                var outRow = (c * outH + y) * outW;
                for (var x = 0; x < outW; x++)
                {
                    var sum = 0f;
                    for (var ky = 0; ky < 4; ky++)
                    {
                        var row = plane + yTaps[ky] * inW;
                        var rowSum = 0f;
                        for (var kx = 0; kx < 4; kx++) rowSum += data[row + xTaps[x * 4 + kx]] * xWeights[x * 4 + kx];
                        sum += rowSum * w[ky];
                    }
                    output[outRow + x] = Math.Clamp(sum, 0f, max);
                }
            }
        }
    }

    /// <summary>Copies the rectangle at (top, left) of size height x width.</summary>
    public static ImageBuffer Crop(ImageBuffer image, int top, int left, int height, int width)
    {
        if (top < 0 || left < 0 || height <= 0 || width <= 0 || top + height > image.Height || left + width > image.Width)
            throw new ArgumentOutOfRangeException(nameof(top), $"crop ({top},{left},{height},{width}) outside {image.Height}x{image.Width}");
        var output = image.Rent(image.Channels, height, width);
        for (var c = 0; c < image.Channels; c++)
            for (var y = 0; y < height; y++)
                Array.Copy(image.Data, (c * image.Height + top + y) * image.Width + left, output.Data, (c * height + y) * width, width);
        return output;
    }
}
