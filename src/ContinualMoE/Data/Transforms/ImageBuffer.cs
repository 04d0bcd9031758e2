namespace ContinualMoE.Data.Transforms;

/// <summary>
/// The working image of a pipeline: float CHW planes. Values start in byte scale (0..255, <see cref="MaxValue"/> 255)
/// and <see cref="ToUnitRange"/> scales them to 0..1, like torchvision's ToTensor.
/// </summary>
public sealed class ImageBuffer
{
    public ImageBuffer(int channels, int height, int width, float[] data, float maxValue)
    {
        if (data.Length != channels * height * width) throw new ArgumentException("buffer size does not match the shape");
        Channels = channels;
        Height = height;
        Width = width;
        Data = data;
        MaxValue = maxValue;
    }

    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    /// <summary>CHW, row-major within a plane.</summary>
    public float[] Data { get; }

    /// <summary>The value of full intensity at this stage (255 before scaling, 1 after); brightness jitter clamps to it.</summary>
    public float MaxValue { get; }

    public static ImageBuffer FromRaw(RawImage image)
    {
        image.Validated();
        int c = image.Channels, plane = image.Width * image.Height;
        var data = new float[c * plane];
        Deinterleave(image.Pixels, c, plane, data);
        return new ImageBuffer(c, image.Height, image.Width, data, 255f);
    }

    /// <summary>HWC bytes to CHW floats; the loader's first step on every image, so without bounds checks.</summary>
    private static unsafe void Deinterleave(byte[] pixels, int channels, int plane, float[] data)
    {
        fixed (byte* source = pixels)
        fixed (float* target = data)
        {
            if (channels == 3)
            {
                float* r = target, g = target + plane, b = target + 2 * plane;
                for (var p = 0; p < plane; p++)
                {
                    var q = source + 3 * p;
                    r[p] = q[0];
                    g[p] = q[1];
                    b[p] = q[2];
                }
            }
            else
                for (var p = 0; p < plane; p++)
                    for (var k = 0; k < channels; k++)
                        target[k * plane + p] = source[p * channels + k];
        }
    }

    public ImageBuffer With(int channels, int height, int width, float[] data) => new(channels, height, width, data, MaxValue);
}
