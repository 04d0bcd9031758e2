using StbImageSharp;

namespace ContinualMoE.Data.Loaders;

/// <summary>Decodes JPEG, PNG, BMP, GIF and TGA files with StbImageSharp into grey or RGB <see cref="RawImage"/>s (alpha is dropped).</summary>
public static class ImageDecoder
{
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga" };

    public static bool IsImageFile(string path) => Extensions.Contains(Path.GetExtension(path));

    public static RawImage DecodeFile(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw ContinualMoEException.ForFile(path, $"cannot read image: {e.Message}", e); }
        return Decode(bytes, path);
    }

    public static RawImage Decode(byte[] bytes, string source)
    {
        ImageResult result;
        try
        {
            // StbImageSharp keeps no per-call global state apart from flip settings we never change, so decoding is
            // safe from several threads at once.
            result = ImageResult.FromMemory(bytes, ColorComponents.Default);
        }
        catch (Exception e)
        {
            throw ContinualMoEException.ForFile(source, $"cannot decode image: {e.Message}", e);
        }
        if (result?.Data == null || result.Width <= 0 || result.Height <= 0)
            throw ContinualMoEException.ForFile(source, "cannot decode image: decoder returned no pixels");

        var sourceChannels = result.Comp switch
        {
            ColorComponents.Grey => 1,
            ColorComponents.GreyAlpha => 2,
            ColorComponents.RedGreenBlue => 3,
            _ => 4,
        };
        var channels = sourceChannels <= 2 ? 1 : 3;
        if (sourceChannels == channels) return new RawImage(result.Width, result.Height, channels, result.Data);

        var pixelCount = result.Width * result.Height;
        var pixels = new byte[pixelCount * channels];
        for (var p = 0; p < pixelCount; p++)
            for (var c = 0; c < channels; c++)
                pixels[p * channels + c] = result.Data[p * sourceChannels + c];
        return new RawImage(result.Width, result.Height, channels, pixels);
    }
}
