using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Data.Transforms;
using SkiaSharp;

namespace ContinualMoE.Tests.Data;

/// <summary>
/// Malformed images must decode or fail with a one-line error naming the file, within a time bound, never hang
/// (issue 15 §2). Valid JPEG and PNG files made with Skia's encoders are mutated by truncation, bit flips, runs of
/// random bytes and huge declared sizes.
/// </summary>
public class ImageDecoderFuzzTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-fuzz-");
    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>SOI and a cut-off JFIF APP0 segment: StbImageSharp 2.30.16 never returned on these 16 bytes.</summary>
    private static readonly byte[] TruncatedJfif = Convert.FromHexString("ffd8ffe000104a464946000101000001");

    /// <summary>A photo-like RGB (or grey) image: smooth gradients plus seeded noise, so the JPEG has real entropy data.</summary>
    internal static RawImage Photo(int width, int height, int channels, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[width * height * channels];
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                for (var c = 0; c < channels; c++)
                    pixels[(y * width + x) * channels + c] =
                        (byte)Math.Clamp(x * 200 / width + y * 50 / height + c * 20 + random.Next(-8, 9), 0, 255);
        return new RawImage(width, height, channels, pixels);
    }

    /// <summary>Encodes with Skia's own encoders (libjpeg-turbo, libpng).</summary>
    internal static byte[] Encode(RawImage image, SKEncodedImageFormat format, int quality = 90)
    {
        var grey = image.Channels == 1;
        var info = new SKImageInfo(image.Width, image.Height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        var pixels = grey ? image.Pixels : new byte[image.Width * image.Height * 4];
        if (!grey)
            for (var p = 0; p < image.Width * image.Height; p++)
            {
                for (var c = 0; c < 3; c++) pixels[4 * p + c] = image.Pixels[3 * p + c];
                pixels[4 * p + 3] = 255;
            }
        using var bitmap = new SKBitmap(info);
        Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var data = bitmap.Encode(format, quality);
        return data.ToArray();
    }

    /// <summary>Decodes on a separate thread; fails the test if that takes longer than the bound.</summary>
    private static (RawImage? Image, ContinualMoEException? Error) DecodeWithin(byte[] bytes, string name, TimeSpan bound)
    {
        RawImage? image = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { image = ImageDecoder.Decode(bytes, name); }
            catch (Exception e) { error = e; }
        }) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(bound), $"{name}: decoding did not finish within {bound.TotalSeconds} s");
        if (error != null && error is not ContinualMoEException)
            Assert.Fail($"{name}: {error.GetType().Name} instead of a ContinualMoEException: {error.Message}");
        return (image, error as ContinualMoEException);
    }

    /// <summary>Returns whether decoding failed (cleanly).</summary>
    private static bool AssertDecodesOrFailsCleanly(byte[] bytes, string name)
    {
        var (image, error) = DecodeWithin(bytes, name, TimeSpan.FromSeconds(10));
        if (error != null)
        {
            Assert.StartsWith(name + ": ", error.Message);
            Assert.DoesNotContain('\n', error.Message);
            return true;
        }
        Assert.NotNull(image);
        image!.Validated();
        return false;
    }

    [Fact]
    public void MutatedJpegAndPngFilesDecodeOrFailWithOneLineErrorsInTime()
    {
        var bases = new (string Name, byte[] Bytes)[]
        {
            ("photo.jpg", Encode(Photo(48, 32, 3, 1), SKEncodedImageFormat.Jpeg, 90)),
            ("small.jpg", Encode(Photo(33, 17, 3, 2), SKEncodedImageFormat.Jpeg, 50)),
            ("grey.jpg", Encode(Photo(24, 20, 1, 3), SKEncodedImageFormat.Jpeg, 75)),
            ("photo.png", Encode(Photo(40, 24, 3, 4), SKEncodedImageFormat.Png)),
            ("grey.png", TestFiles.EncodePng(Photo(16, 12, 1, 5))),
        };
        var watch = Stopwatch.StartNew();
        var failures = 0;
        var cases = 0;
        for (var iteration = 0; iteration < 400; iteration++)
        {
            var random = new Random(iteration);
            var (name, original) = bases[iteration % bases.Length];
            var bytes = (byte[])original.Clone();
            string mutation;
            switch (iteration / bases.Length % 4)
            {
                case 0:
                    mutation = "truncated";
                    bytes = bytes[..random.Next(bytes.Length)];
                    break;
                case 1:
                    mutation = "bit-flips";
                    for (var k = random.Next(1, 9); k > 0; k--) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                case 2:
                    mutation = "random-run";
                    var start = random.Next(bytes.Length);
                    for (var i = start; i < Math.Min(bytes.Length, start + random.Next(1, 200)); i++) bytes[i] = (byte)random.Next(256);
                    break;
                default:
                    mutation = "header-bytes";
                    var at = random.Next(Math.Min(bytes.Length, 400));
                    bytes[at] = (byte)random.Next(256);
                    break;
            }
            var caseName = $"/fuzz/{iteration}-{mutation}-{name}";
            if (AssertDecodesOrFailsCleanly(bytes, caseName)) failures++;
            cases++;
        }
        // The mutations must actually exercise the error paths, not only harmless bytes.
        Assert.InRange(failures, cases / 5, cases - 1);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"{cases} decodes took {watch.Elapsed}");
    }

    [Fact]
    public void JpegWithGarbageBodyAndTruncatedHeaderFailOrDecodeInTime()
    {
        Assert.True(AssertDecodesOrFailsCleanly(TruncatedJfif, "/data/cls/stb-hang.jpg"));

        // A valid header whose entropy-coded body is random bytes (what a new user tried): any outcome but a hang.
        var jpeg = Encode(Photo(64, 48, 3, 9), SKEncodedImageFormat.Jpeg);
        var bodyStart = StartOfScanData(jpeg);
        for (var seed = 0; seed < 20; seed++)
        {
            var bytes = (byte[])jpeg.Clone();
            var random = new Random(seed);
            for (var i = bodyStart; i < bytes.Length - (seed % 2 == 0 ? 2 : 0); i++) bytes[i] = (byte)random.Next(256);
            AssertDecodesOrFailsCleanly(bytes, $"/data/cls/garbage-{seed}.jpg");
        }
    }

    private static int StartOfScanData(byte[] jpeg)
    {
        for (var i = 2; i < jpeg.Length - 3; i++)
            if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA) return i + 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(i + 2));
        throw new InvalidOperationException("no SOS marker");
    }

    [Fact]
    public void HugeDeclaredSizesAreRefusedBeforeDecoding()
    {
        // PNG: IHDR says 60000 x 60000 (3.6 gigapixels); the CRC is recomputed so only the size is wrong.
        var png = TestFiles.EncodePng(Photo(8, 8, 3, 1));
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), 60000);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), 60000);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), TestFiles.Crc32(png[12..29]));
        var error = DecodeWithin(png, "/data/bomb.png", TimeSpan.FromSeconds(10)).Error;
        Assert.NotNull(error);
        Assert.Contains("60000x60000", error!.Message);
        Assert.Contains("decompression bomb", error.Message);

        // JPEG: the SOF0 frame header says 65000 x 65000.
        var jpeg = Encode(Photo(16, 16, 3, 2), SKEncodedImageFormat.Jpeg);
        var sof = Enumerable.Range(2, jpeg.Length - 3).First(i => jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC1 or 0xC2);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), 65000);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), 65000);
        error = DecodeWithin(jpeg, "/data/bomb.jpg", TimeSpan.FromSeconds(10)).Error;
        Assert.NotNull(error);
        Assert.StartsWith("/data/bomb.jpg: ", error!.Message);
        Assert.Contains("decompression bomb", error.Message);
    }

    [Fact]
    public void JpegDecodesCloseToTheEncodedPixelsAndGreyStaysGrey()
    {
        var rgb = Photo(40, 30, 3, 7);
        var decoded = ImageDecoder.Decode(Encode(rgb, SKEncodedImageFormat.Jpeg, 95), "a.jpg");
        Assert.Equal((40, 30, 3), (decoded.Width, decoded.Height, decoded.Channels));
        Assert.InRange(MeanAbsoluteDifference(rgb.Pixels, decoded.Pixels), 0, 4);

        var grey = Photo(20, 10, 1, 8);
        var greyDecoded = ImageDecoder.Decode(Encode(grey, SKEncodedImageFormat.Jpeg, 95), "g.jpg");
        Assert.Equal(1, greyDecoded.Channels);
        Assert.InRange(MeanAbsoluteDifference(grey.Pixels, greyDecoded.Pixels), 0, 4);

        var error = Assert.Throws<ContinualMoEException>(() => ImageDecoder.Decode("not an image"u8.ToArray(), "notes.png"));
        Assert.StartsWith("notes.png: ", error.Message);
    }

    [Fact]
    public void ScaledJpegDecodingKeepsAtLeastTheRequestedSize()
    {
        var photo = Photo(160, 120, 3, 3);
        var jpeg = Encode(photo, SKEncodedImageFormat.Jpeg, 95);
        var scaled = ImageDecoder.Decode(jpeg, "big.jpg", atLeast: (32, 32));
        // libjpeg scales by k/8: 2/8 would give 40x30 (too short), so 3/8: 60x45.
        Assert.Equal((60, 45), (scaled.Width, scaled.Height));
        // Same picture: the full decode resized to that size differs only by resampling.
        var full = ImageDecoder.Decode(jpeg, "big.jpg");
        var resized = Interpolation.Resize(ImageBuffer.FromRaw(full), 45, 60, ResampleMode.Bilinear).ToArray();
        var scaledChw = ImageBuffer.FromRaw(scaled).ToArray();
        Assert.InRange(scaledChw.Zip(resized, (a, b) => Math.Abs(a - b)).Average(), 0, 12);

        Assert.Equal((160, 120), (ImageDecoder.Decode(jpeg, "big.jpg", atLeast: (120, 10)).Width, 120));
        var png = TestFiles.EncodePng(TestFiles.Pattern(50, 40, 3, 1));
        Assert.Equal(50, ImageDecoder.Decode(png, "big.png", atLeast: (8, 8)).Width);
    }

    [Fact]
    public void ImageFolderWithABrokenJpegFailsTheEpochNamingTheFile()
    {
        for (var i = 0; i < 4; i++)
            File.WriteAllBytes(Path.Combine(Directory.CreateDirectory(Path.Combine(_root, $"c{i % 2}")).FullName, $"{i}.jpg"),
                Encode(Photo(20, 16, 3, i), SKEncodedImageFormat.Jpeg));
        var broken = Path.Combine(_root, "c1", "9.jpg");
        File.WriteAllBytes(broken, TruncatedJfif);
        var data = ImageFolderLoader.Load(_root, "folder", testFraction: 0);
        var loader = new DataLoader(data.Train, ImagePipeline.ForEvaluation(16), batchSize: 2, shuffle: true, seed: 1, workers: 2);
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { foreach (var batch in loader.Epoch(0)) batch.Dispose(); }
            catch (Exception e) { error = e; }
        }) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(30)), "the epoch did not finish");
        var userError = Assert.IsType<ContinualMoEException>(error);
        Assert.StartsWith(broken + ": cannot decode image", userError.Message);
    }

    private static double MeanAbsoluteDifference(byte[] a, byte[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average();
}
