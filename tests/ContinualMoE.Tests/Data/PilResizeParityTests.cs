using System.Text.Json;
using ContinualMoE.Data.Transforms;

namespace ContinualMoE.Tests.Data;

/// <summary>
/// The PIL resampler against PIL itself. Fixtures/pil_resize.json is written by tools/make_pil_resize_fixture.py with
/// Debian's python3-pil 9.4.0 and torchvision: Resize (shorter side and exact), resized_crop (what RandomResizedCrop
/// runs after drawing its box) and Resize + CenterCrop, bilinear and bicubic, shrinking and enlarging.
/// </summary>
public class PilResizeParityTests
{
    private static readonly JsonElement Fixture =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "pil_resize.json"))).RootElement;

    private static ImageBuffer Decode(JsonElement image)
    {
        int height = image.GetProperty("height").GetInt32(), width = image.GetProperty("width").GetInt32();
        var bytes = Convert.FromBase64String(image.GetProperty("data").GetString()!);
        var data = new float[bytes.Length];
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                for (var c = 0; c < 3; c++)
                    data[(c * height + y) * width + x] = bytes[(y * width + x) * 3 + c];
        return new ImageBuffer(3, height, width, data, 255f);
    }

    private static ImageBuffer Run(JsonElement testCase, ImageBuffer image, ResampleMode mode)
    {
        var args = testCase.GetProperty("args").EnumerateArray().Select(a => a.GetInt32()).ToArray();
        var random = new Random(0);
        return testCase.GetProperty("kind").GetString() switch
        {
            "resize_short" => new ResizeShorterSide(args[0], mode).Apply(image, random),
            "resize_exact" => new Resize(args[0], args[1], mode).Apply(image, random),
            // RandomResizedCrop.Apply: crop the drawn box, then resize it to size x size.
            "resized_crop" => Interpolation.Resize(Interpolation.Crop(image, args[0], args[1], args[2], args[3]), args[4], args[4], mode),
            "center_crop" => new CenterCrop(args[1], args[1]).Apply(new ResizeShorterSide(args[0], mode).Apply(image, random), random),
            var kind => throw new InvalidOperationException(kind),
        };
    }

    [Fact]
    public void PilResamplerEqualsPilPixelForPixel()
    {
        var images = Fixture.GetProperty("images").EnumerateArray().Select(Decode).ToArray();
        var settings = new ImageSettings { Resampler = "pil" };
        var cases = 0;
        foreach (var testCase in Fixture.GetProperty("cases").EnumerateArray())
        {
            var mode = settings.Mode(testCase.GetProperty("interpolation").GetString()!, "test_interpolation");
            var ours = Run(testCase, images[testCase.GetProperty("input").GetInt32()], mode);
            var expected = Decode(testCase.GetProperty("expected"));
            Assert.Equal((expected.Height, expected.Width), (ours.Height, ours.Width));
            var worst = expected.ToArray().Zip(ours.ToArray(), (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst == 0, $"case {cases} ({testCase.GetProperty("kind")} {testCase.GetProperty("interpolation")}): off by {worst}/255");
            cases++;
        }
        Assert.Equal(56, cases);
    }

    /// <summary>The fixture can tell the resamplers apart: torch's interpolate (no antialiasing, a = -0.75) is off by far
    /// more than 1/255 on the shrinking cases.</summary>
    [Fact]
    public void TorchResamplerDiffersFromPilWhenShrinking()
    {
        var images = Fixture.GetProperty("images").EnumerateArray().Select(Decode).ToArray();
        var settings = new ImageSettings();
        var worst = 0f;
        foreach (var testCase in Fixture.GetProperty("cases").EnumerateArray().Where(c => c.GetProperty("kind").GetString() == "resize_short"))
        {
            var mode = settings.Mode(testCase.GetProperty("interpolation").GetString()!, "test_interpolation");
            var ours = Run(testCase, images[testCase.GetProperty("input").GetInt32()], mode);
            var expected = Decode(testCase.GetProperty("expected"));
            worst = Math.Max(worst, expected.ToArray().Zip(ours.ToArray(), (a, b) => Math.Abs(a - b)).Max());
        }
        Assert.True(worst > 10, $"torch-style resize unexpectedly within {worst}/255 of PIL");
    }

    [Fact]
    public void PipelinesUseThePilResamplerWhenAskedAndRejectUnknownOnes()
    {
        var image = Decode(Fixture.GetProperty("images")[0]);
        var settings = new ImageSettings { Resampler = "pil", TestInterpolation = "bicubic", TestTransform = "resize-crop" };
        var pipeline = ImagePipeline.ForEvaluation(8, [0f, 0f, 0f], [1f, 1f, 1f], settings);
        var raw = new RawImageFromBuffer(image);
        var processed = pipeline.Process(raw.Image, 0, 0);
        var manual = new CenterCrop(8, 8).Apply(new ResizeShorterSide(8 * 256 / 224, ResampleMode.PilBicubic).Apply(image, new Random(0)), new Random(0));
        Assert.Equal(manual.ToArray().Select(v => v * (1f / 255f)), processed);
        var error = Assert.Throws<ContinualMoEException>(() => new ImageSettings { Resampler = "opencv" }.Validate());
        Assert.Contains("input.resampler must be torch or pil", error.Message);
    }

    [Theory]
    [InlineData("smope-cifar100-paper.json")]
    [InlineData("smope-cub200-paper.json")]
    [InlineData("smope-imagenet-r-5tasks-paper.json")]
    [InlineData("smope-imagenet-r-10tasks-paper.json")]
    [InlineData("smope-imagenet-r-20tasks-paper.json")]
    [InlineData("hide-prompt-cifar100-sup21k.json")]
    [InlineData("hide-prompt-imagenet-r-sup21k.json")]
    [InlineData("norga-cifar100-sup21k.json")]
    [InlineData("norga-imagenet-r-sup21k.json")]
    public void PaperPresetsResampleAsPil(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = ContinualMoE.Experiments.RunConfig.FromJson(File.ReadAllText(path), path);
        Assert.True(config.Input.PilResampler);
        Assert.True(config.Input.TorchRng);   // torch's augmentation draws, as the official scripts' 4-worker loaders
        Assert.Equal(4, config.Input.TorchWorkers);
        Assert.Equal(file.StartsWith("smope"), config.DropLast);   // only the official SMoPE loader drops the last batch
    }

    /// <summary>A RawImage (HWC bytes) holding the buffer's values.</summary>
    private sealed class RawImageFromBuffer(ImageBuffer buffer)
    {
        public ContinualMoE.Data.RawImage Image { get; } = Make(buffer);

        private static ContinualMoE.Data.RawImage Make(ImageBuffer b)
        {
            var pixels = new byte[b.Height * b.Width * 3];
            for (var y = 0; y < b.Height; y++)
                for (var x = 0; x < b.Width; x++)
                    for (var c = 0; c < 3; c++)
                        pixels[(y * b.Width + x) * 3 + c] = (byte)b.Data[(c * b.Height + y) * b.Width + x];
            return new ContinualMoE.Data.RawImage(b.Width, b.Height, 3, pixels);
        }
    }
}
