namespace ContinualMoE.Data;

/// <summary>An image in memory: interleaved HWC bytes (row-major, channels last), <see cref="Channels"/> is 1 or 3.</summary>
public sealed record RawImage(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>Checks that the pixel buffer matches the declared shape; loaders call this once per image they build.</summary>
    public RawImage Validated()
    {
        if (Width <= 0 || Height <= 0) throw new ContinualMoEException($"image has invalid size {Width}x{Height}");
        if (Channels is not (1 or 3)) throw new ContinualMoEException($"image has {Channels} channels; only 1 (grey) or 3 (RGB) are supported");
        if (Pixels.Length != Width * Height * Channels)
            throw new ContinualMoEException($"image buffer holds {Pixels.Length} bytes but {Width}x{Height}x{Channels} needs {Width * Height * Channels}");
        return this;
    }

    /// <summary>The byte at row <paramref name="y"/>, column <paramref name="x"/>, channel <paramref name="c"/>.</summary>
    public byte this[int y, int x, int c] => Pixels[(y * Width + x) * Channels + c];
}
