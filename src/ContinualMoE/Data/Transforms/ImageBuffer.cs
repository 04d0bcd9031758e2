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
        var pixels = image.Pixels;
        for (var p = 0; p < plane; p++)
            for (var k = 0; k < c; k++)
                data[k * plane + p] = pixels[p * c + k];
        return new ImageBuffer(c, image.Height, image.Width, data, 255f);
    }

    public ImageBuffer With(int channels, int height, int width, float[] data) => new(channels, height, width, data, MaxValue);
}
