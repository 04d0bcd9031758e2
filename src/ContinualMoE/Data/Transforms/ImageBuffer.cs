using System.Buffers;

namespace ContinualMoE.Data.Transforms;

/// <summary>
/// The working image of a pipeline: float CHW planes. Values start in byte scale (0..255, <see cref="MaxValue"/> 255)
/// and <see cref="ScaleToUnit"/> scales them to 0..1, like torchvision's ToTensor.
/// <para>
/// Buffers made by <see cref="FromRaw"/> and by the transforms (<see cref="Rent"/>) hold arrays from
/// <see cref="ArrayPool{T}.Shared"/>, which may be longer than the image: only the first <see cref="Length"/> values
/// (<see cref="Span"/>) are the image. <see cref="ImagePipeline.Apply"/> returns each intermediate array to the pool and
/// the data loader returns the final one once it is copied into the batch tensor, so loading makes no per-sample
/// garbage (fewer garbage collections while libtorch runs, see docs/known-issues.md).
/// </para>
/// </summary>
public sealed class ImageBuffer
{
    private bool pooled;

    public ImageBuffer(int channels, int height, int width, float[] data, float maxValue)
    {
        if (data.Length < channels * height * width) throw new ArgumentException("buffer is smaller than the shape");
        Channels = channels;
        Height = height;
        Width = width;
        Data = data;
        MaxValue = maxValue;
    }

    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    /// <summary>Values in the image: channels x height x width.</summary>
    public int Length => Channels * Height * Width;

    /// <summary>CHW, row-major within a plane; a pooled array can be longer than <see cref="Length"/>.</summary>
    public float[] Data { get; }

    /// <summary>The image's values, <see cref="Length"/> of them.</summary>
    public Span<float> Span => Data.AsSpan(0, Length);

    /// <summary>A copy of the image's values, exactly <see cref="Length"/> long.</summary>
    public float[] ToArray() => Span.ToArray();

    /// <summary>The value of full intensity at this stage (255 before scaling, 1 after); brightness jitter clamps to it.</summary>
    public float MaxValue { get; }

    /// <summary>A buffer of the given shape on a pooled array whose values the caller must all write.</summary>
    public static ImageBuffer Rent(int channels, int height, int width, float maxValue) =>
        new(channels, height, width, ArrayPool<float>.Shared.Rent(channels * height * width), maxValue) { pooled = true };

    /// <summary>A pooled buffer of the given shape with this buffer's <see cref="MaxValue"/>.</summary>
    public ImageBuffer Rent(int channels, int height, int width) => Rent(channels, height, width, MaxValue);

    /// <summary>Gives a pooled array back; the buffer must not be used afterwards. Does nothing for other buffers.</summary>
    public void Return()
    {
        if (!pooled) return;
        pooled = false;
        ArrayPool<float>.Shared.Return(Data);
    }

    public static ImageBuffer FromRaw(RawImage image)
    {
        image.Validated();
        int c = image.Channels, plane = image.Width * image.Height;
        var buffer = Rent(c, image.Height, image.Width, 255f);
        Deinterleave(image.Pixels, c, plane, buffer.Data);
        return buffer;
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
