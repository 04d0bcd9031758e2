using System.Runtime.InteropServices;
using SkiaSharp;

namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Decodes JPEG, PNG, WebP, BMP and GIF files (the first frame) with Skia's codecs (libjpeg-turbo, libpng, libwebp:
/// hardened and fuzzed upstream) into grey or RGB <see cref="RawImage"/>s. Alpha is dropped without compositing and
/// no colour profile or EXIF orientation is applied, like torchvision's PIL loader followed by <c>convert("RGB")</c>.
/// <para>
/// Every input either decodes completely or fails with a one-line <see cref="ContinualMoEException"/> naming the file:
/// a truncated or corrupt file is an error (Skia would fill the missing rows; PIL refuses truncated files too), and so
/// is an image declaring more than <see cref="MaxPixels"/> pixels, checked before any pixel memory is allocated
/// (a decompression bomb). StbImageSharp, used before, never returned on some truncated JPEGs (a 16-byte file spun
/// forever; <c>ImageDecoderFuzzTests</c> keeps that file).
/// </para>
/// </summary>
public static class ImageDecoder
{
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif" };

    /// <summary>PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, 89.5 megapixels, about 1024 MB as RGBA).</summary>
    public const long MaxPixels = 89_478_485;

    public static bool IsImageFile(string path) => Extensions.Contains(Path.GetExtension(path));

    /// <summary>Reads and decodes a file; see <see cref="Decode"/> for <paramref name="atLeast"/>.</summary>
    public static RawImage DecodeFile(string path, (int Height, int Width)? atLeast = null)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContinualMoEException.ForFile(path, $"cannot read image: {e.Message}", e);
        }
        return Decode(bytes, path, atLeast);
    }

    /// <summary>
    /// Decodes an encoded image. With <paramref name="atLeast"/>, a JPEG may be decoded at a reduced scale (libjpeg's
    /// DCT scaling, k/8) as long as both sides stay at least that size: much faster for large photos that a pipeline
    /// shrinks anyway, but the pixels differ from a full decode followed by a resize, so callers opt in.
    /// Other formats always decode at full size.
    /// </summary>
    public static RawImage Decode(byte[] bytes, string source, (int Height, int Width)? atLeast = null)
    {
        using var data = SKData.CreateCopy(bytes);
        // The codec takes ownership of the native stream and frees it with itself.
        var stream = new SKMemoryStream(data);
        using var codec = SKCodec.Create(stream, out var createResult);
        if (codec == null)
        {
            stream.Dispose();
            throw ContinualMoEException.ForFile(source, $"cannot decode image: {Describe(createResult, unknownFormat: true)}");
        }

        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0)
            throw ContinualMoEException.ForFile(source, $"cannot decode image: invalid size {info.Width}x{info.Height}");
        if ((long)info.Width * info.Height > MaxPixels)
            throw ContinualMoEException.ForFile(source,
                $"image declares {info.Width}x{info.Height} pixels, more than the {MaxPixels} allowed (decompression bomb?)");

        var (width, height) = (info.Width, info.Height);
        if (atLeast is { } target && codec.EncodedFormat == SKEncodedImageFormat.Jpeg)
            (width, height) = ScaledSize(codec, target.Height, target.Width);

        var grey = info.ColorType == SKColorType.Gray8;
        var decodeInfo = new SKImageInfo(width, height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var decoded = new byte[decodeInfo.BytesSize64];
        var handle = GCHandle.Alloc(decoded, GCHandleType.Pinned);
        SKCodecResult result;
        try { result = codec.GetPixels(decodeInfo, handle.AddrOfPinnedObject()); }
        finally { handle.Free(); }
        if (result != SKCodecResult.Success)
            throw ContinualMoEException.ForFile(source, $"cannot decode image: {Describe(result, unknownFormat: false)}");

        if (grey) return new RawImage(width, height, 1, decoded);
        return new RawImage(width, height, 3, DropAlpha(decoded, width * height));
    }

    /// <summary>RGBA to RGB bytes (Skia decodes to 4 bytes per pixel); once per decoded pixel, so without bounds checks.</summary>
    private static unsafe byte[] DropAlpha(byte[] rgba, int pixelCount)
    {
        var rgb = new byte[pixelCount * 3];
        fixed (byte* source = rgba)
        fixed (byte* target = rgb)
        {
            for (var p = 0; p < pixelCount; p++)
            {
                var from = source + 4 * p;
                var to = target + 3 * p;
                to[0] = from[0];
                to[1] = from[1];
                to[2] = from[2];
            }
        }
        return rgb;
    }

    /// <summary>The smallest size the JPEG decoder supports whose sides are both at least the target (else full size).</summary>
    private static (int Width, int Height) ScaledSize(SKCodec codec, int minHeight, int minWidth)
    {
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        var scale = Math.Max((float)minWidth / width, (float)minHeight / height);
        if (scale >= 1) return (width, height);
        // libjpeg-turbo scales by k/8; try each k upward and keep the first that covers the target.
        for (var k = Math.Max(1, (int)Math.Floor(scale * 8)); k < 8; k++)
        {
            var size = codec.GetScaledDimensions(k / 8f);
            if (size.Width >= minWidth && size.Height >= minHeight && size.Width <= width && size.Height <= height)
                return (size.Width, size.Height);
        }
        return (width, height);
    }

    private static string Describe(SKCodecResult result, bool unknownFormat) => result switch
    {
        SKCodecResult.IncompleteInput => "the file is truncated",
        SKCodecResult.ErrorInInput => "the file is corrupt",
        SKCodecResult.InvalidInput when unknownFormat => "the file is corrupt or not a supported image format",
        SKCodecResult.Unimplemented when unknownFormat => "not a supported image format (JPEG, PNG, WebP, BMP, GIF)",
        SKCodecResult.Unimplemented => "the image uses an encoding the decoder does not support",
        _ => $"decoder reported {result}",
    };
}
