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

    private static int Clip8(int sum) => Math.Clamp(sum >> PrecisionBits, 0, 255);

    public static ImageBuffer Resize(ImageBuffer image, int height, int width, bool bicubic)
    {
        if (image.MaxValue != 255f)
            throw new InvalidOperationException("PIL resampling works on byte-valued images; resize before scaling to [0, 1]");
        var channels = image.Channels;
        var data = image.Data;
        int inH = image.Height, inW = image.Width;
        // The passes work on integer copies of the (integral) values: Pillow's sums are exact integer sums, so the order
        // of the additions does not matter and the vertical pass can run along rows (cache-friendly).
        var values = new int[image.Length];
        for (var i = 0; i < values.Length; i++) values[i] = (int)data[i];
        if (width != inW)
        {
            values = Horizontal(values, channels * inH, inW, width, Coefficients(inW, width, bicubic));
            inW = width;
        }
        if (height != inH) values = Vertical(values, channels, inH, inW, height, Coefficients(inH, height, bicubic));
        var result = new float[values.Length];
        for (var i = 0; i < values.Length; i++) result[i] = values[i];
        return image.With(channels, height, width, result);
    }

    private static unsafe int[] Horizontal(int[] source, int rows, int inW, int width, (int[] First, int[] Count, int[] Weights, int KernelSize) k)
    {
        var output = new int[rows * width];
        fixed (int* data = source)
        fixed (int* target = output)
        fixed (int* weights = k.Weights)
        {
            for (var y = 0; y < rows; y++)
            {
                var row = data + y * inW;
                var outRow = target + y * width;
                for (var x = 0; x < width; x++)
                {
                    var sum = 1 << (PrecisionBits - 1);
                    var taps = row + k.First[x];
                    var w = weights + x * k.KernelSize;
                    for (var t = 0; t < k.Count[x]; t++) sum += taps[t] * w[t];
                    outRow[x] = Clip8(sum);
                }
            }
        }
        return output;
    }

    private static unsafe int[] Vertical(int[] source, int channels, int inH, int width, int height, (int[] First, int[] Count, int[] Weights, int KernelSize) k)
    {
        var output = new int[channels * height * width];
        var sums = new int[width];
        fixed (int* data = source)
        fixed (int* target = output)
        fixed (int* sum = sums)
        {
            for (var c = 0; c < channels; c++)
            {
                var plane = data + c * inH * width;
                for (var y = 0; y < height; y++)
                {
                    for (var x = 0; x < width; x++) sum[x] = 1 << (PrecisionBits - 1);
                    for (var t = 0; t < k.Count[y]; t++)
                    {
                        var row = plane + (k.First[y] + t) * width;
                        var w = k.Weights[y * k.KernelSize + t];
                        for (var x = 0; x < width; x++) sum[x] += row[x] * w;
                    }
                    var outRow = target + (c * height + y) * width;
                    for (var x = 0; x < width; x++) outRow[x] = Clip8(sum[x]);
                }
            }
        }
        return output;
    }
}
