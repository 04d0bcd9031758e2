namespace ContinualMoE.Data.Transforms;

/// <summary>
/// PIL's <c>Image.resize(size, BILINEAR | BICUBIC)</c> on 8-bit images (Pillow's libImaging/Resample.c), which is what
/// torchvision's Resize, RandomResizedCrop and the official HiDe-Prompt / NoRGa / SMoPE pipelines run on PIL images:
/// <list type="bullet">
/// <item>separable: a horizontal pass, rounded to 8 bits, then a vertical pass (each only when that size changes);</item>
/// <item>output pixel i is centred on source coordinate (i + 0.5) x scale; when shrinking, the filter's support is
/// widened by the scale (support 1 x scale for bilinear, 2 x scale for bicubic), i.e. antialiased;</item>
/// <item>taps outside the image are dropped and the remaining weights renormalised (no border replication);</item>
/// <item>bicubic is Keys' kernel with a = -0.5 (torch's interpolate uses -0.75);</item>
/// <item>weights become 22-bit fixed point, sums start at half a unit and are floored and clamped to 0..255.</item>
/// </list>
/// Input values must be integral bytes (0..255), as decoded images are; the output is again integral.
/// Tested pixel for pixel against Debian's python3-pil (tools/make_pil_resize_fixture.py).
/// </summary>
public static class PilResampling
{
    private const int PrecisionBits = 32 - 8 - 2;

    private static double BilinearFilter(double x)
    {
        x = Math.Abs(x);
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    private static double BicubicFilter(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Per output index: first source index, tap count, and fixed-point weights (ksize per output).</summary>
    private static (int[] First, int[] Count, int[] Weights, int KernelSize) Coefficients(int inSize, int outSize, bool bicubic)
    {
        var filterSupport = bicubic ? 2.0 : 1.0;
        var scale = (double)inSize / outSize;
        var filterScale = Math.Max(scale, 1.0);
        var support = filterSupport * filterScale;
        var kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var first = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * kernelSize];
        var k = new double[kernelSize];
        for (var i = 0; i < outSize; i++)
        {
            var center = (i + 0.5) * scale;
            var inverse = 1.0 / filterScale;
            var min = Math.Max((int)(center - support + 0.5), 0);
            var max = Math.Min((int)(center + support + 0.5), inSize) - min;
            var total = 0.0;
            for (var x = 0; x < max; x++)
            {
                var w = bicubic ? BicubicFilter((x + min - center + 0.5) * inverse) : BilinearFilter((x + min - center + 0.5) * inverse);
                k[x] = w;
                total += w;
            }
            for (var x = 0; x < max; x++)
            {
                var normalised = total != 0.0 ? k[x] / total : k[x];
                weights[i * kernelSize + x] = normalised < 0
                    ? (int)(-0.5 + normalised * (1 << PrecisionBits))
                    : (int)(0.5 + normalised * (1 << PrecisionBits));
            }
            first[i] = min;
            count[i] = max;
        }
        return (first, count, weights, kernelSize);
    }

    private static float Clip8(int sum) => Math.Clamp(sum >> PrecisionBits, 0, 255);

    public static ImageBuffer Resize(ImageBuffer image, int height, int width, bool bicubic)
    {
        if (image.MaxValue != 255f)
            throw new InvalidOperationException("PIL resampling works on byte-valued images; resize before scaling to [0, 1]");
        var channels = image.Channels;
        var current = image;
        var data = image.Data;
        int inH = image.Height, inW = image.Width;
        if (width != inW)
        {
            var (first, count, weights, ksize) = Coefficients(inW, width, bicubic);
            current = image.Rent(channels, inH, width);
            var output = current.Data;
            for (var c = 0; c < channels; c++)
                for (var y = 0; y < inH; y++)
                {
                    var row = (c * inH + y) * inW;
                    var outRow = (c * inH + y) * width;
                    for (var x = 0; x < width; x++)
                    {
                        var sum = 1 << (PrecisionBits - 1);
                        var offset = x * ksize;
                        for (var t = 0; t < count[x]; t++) sum += (int)data[row + first[x] + t] * weights[offset + t];
                        output[outRow + x] = Clip8(sum);
                    }
                }
            data = output;
            inW = width;
        }
        if (height != inH)
        {
            var (first, count, weights, ksize) = Coefficients(inH, height, bicubic);
            var resized = image.Rent(channels, height, inW);
            var output = resized.Data;
            for (var c = 0; c < channels; c++)
            {
                var plane = c * inH * inW;
                for (var y = 0; y < height; y++)
                {
                    var outRow = (c * height + y) * inW;
                    var offset = y * ksize;
                    for (var x = 0; x < inW; x++)
                    {
                        var sum = 1 << (PrecisionBits - 1);
                        for (var t = 0; t < count[y]; t++) sum += (int)data[plane + (first[y] + t) * inW + x] * weights[offset + t];
                        output[outRow + x] = Clip8(sum);
                    }
                }
            }
            if (!ReferenceEquals(current, image)) current.Return();   // the width pass's intermediate
            current = resized;
        }
        return ReferenceEquals(current, image) ? image.With(channels, height, width, data) : current;
    }
}
