using ContinualMoE.Data;
using ContinualMoE.Data.Transforms;
using TorchSharp;

namespace ContinualMoE.Tests.Data;

public class ImagePipelineTests
{
    private static ImageBuffer Buffer(RawImage image) => ImageBuffer.FromRaw(image);

    [Theory]
    [InlineData(ResampleMode.Bilinear, 7, 5, 16, 11)]
    [InlineData(ResampleMode.Bilinear, 32, 32, 20, 13)]
    [InlineData(ResampleMode.Bicubic, 7, 5, 16, 11)]
    [InlineData(ResampleMode.Bicubic, 30, 24, 12, 9)]
    public void ResizeMatchesTorchInterpolateWithAlignCornersFalse(ResampleMode mode, int inH, int inW, int outH, int outW)
    {
        var image = TestFiles.Pattern(inW, inH, 3, seed: 5);
        var ours = Interpolation.Resize(Buffer(image), outH, outW, mode);
        using var input = torch.tensor(Buffer(image).ToArray(), [1, 3, inH, inW]);
        using var expected = torch.nn.functional.interpolate(input, [outH, outW],
            mode: mode == ResampleMode.Bilinear ? torch.InterpolationMode.Bilinear : torch.InterpolationMode.Bicubic,
            align_corners: false);
        // Our bicubic clamps overshoot to the valid range; torch's float path does not.
        using var clamped = mode == ResampleMode.Bicubic ? expected.clamp(0, 255) : expected.alias();
        var reference = clamped.data<float>().ToArray();
        for (var i = 0; i < reference.Length; i++) Assert.Equal(reference[i], ours.Data[i], 2);
    }

    /// <summary>The pipeline scales and normalises in one pass; the floats must be those of the two transforms run one
    /// after the other (the fusion is a speed-up only).</summary>
    [Theory]
    [InlineData("torch")]
    [InlineData("pil")]
    public void FusedScaleAndNormaliseGiveTheFloatsOfTheTwoPasses(string resampler)
    {
        var settings = new ImageSettings { Resampler = resampler, Mean = [0.485f, 0.456f, 0.406f], Std = [0.229f, 0.224f, 0.225f], BrightnessJitter = 0.25 };
        var image = TestFiles.Pattern(53, 41, 3, seed: 9);
        foreach (var pipeline in new[] { ImagePipeline.ForTraining(24, augment: true, settings.Mean, settings.Std, 0.3, settings),
                     ImagePipeline.ForEvaluation(24, settings.Mean, settings.Std, settings) })
        {
            var random = new Random(Seeds.Combine(5, 7));
            var stepwise = ImageBuffer.FromRaw(image);
            foreach (var transform in pipeline.Transforms) stepwise = transform.Apply(stepwise, random);
            Assert.Equal(stepwise.ToArray(), pipeline.Process(image, 5, 7));
        }
    }

    [Fact]
    public void PipelineIsReproduciblePerEpochSeedAndSample()
    {
        var pipeline = ImagePipeline.ForTraining(16, augment: true).Then(new BrightnessJitter(0.4));
        var image = TestFiles.Pattern(40, 30, 3, seed: 1);
        var a = pipeline.Process(image, epochSeed: 3, sampleIndex: 17);
        Assert.Equal(a, pipeline.Process(image, 3, 17));
        Assert.NotEqual(a, pipeline.Process(image, 3, 18));
        Assert.NotEqual(a, pipeline.Process(image, 4, 17));
        Assert.Equal(3 * 16 * 16, a.Length);
    }

    [Fact]
    public void PresetsProduceNormalisedRgbOfFixedSize()
    {
        var grey = new RawImage(4, 4, 1, Enumerable.Repeat((byte)255, 16).ToArray());
        var output = ImagePipeline.ForEvaluation(8).Apply(grey, 0, 0);
        Assert.Equal((3, 8, 8), (output.Channels, output.Height, output.Width));
        Assert.All(output.ToArray(), v => Assert.Equal(1f, v, 5)); // (1 - 0.5) / 0.5
        var imagenet = ImagePipeline.ForEvaluation(4, ImagePipeline.ImageNetMean, ImagePipeline.ImageNetStd).Apply(grey, 0, 0);
        Assert.Equal((1 - 0.485f) / 0.229f, imagenet.Data[0], 4);
        using var tensor = ImagePipeline.ForTraining(6, augment: false).ProcessToTensor(grey, 0, 0);
        Assert.Equal(new long[] { 3, 6, 6 }, tensor.shape);
    }

    [Fact]
    public void RandomResizedCropStaysInsideAndRespectsScale()
    {
        var crop = new RandomResizedCrop(8);
        var random = new Random(1);
        for (var i = 0; i < 500; i++)
        {
            var (top, left, h, w) = crop.SampleCrop(50, 80, random);
            Assert.InRange(top, 0, 50 - h);
            Assert.InRange(left, 0, 80 - w);
            Assert.True(h * w <= 50 * 80 * 1.05 && h * w >= 50 * 80 * 0.06, $"area {h * w}");
        }
        var output = crop.Apply(Buffer(TestFiles.Pattern(80, 50, 3, 2)), new Random(3));
        Assert.Equal((8, 8), (output.Height, output.Width));
    }

    [Fact]
    public void FlipBrightnessScaleNormalize()
    {
        var image = Buffer(new RawImage(3, 1, 1, [10, 20, 30]));
        Assert.Equal(new float[] { 30, 20, 10 }, new HorizontalFlip(1).Apply(image, new Random(0)).ToArray());
        Assert.Same(image, new HorizontalFlip(0).Apply(image, new Random(0)));
        var bright = new BrightnessJitter(0.5).Apply(Buffer(new RawImage(1, 1, 1, [200])), new Random(0)).Data[0];
        Assert.InRange(bright, 100f, 255f);
        var unit = new ScaleToUnit().Apply(image, new Random(0));
        Assert.Equal(20f / 255f, unit.Data[1], 6);
        var normalized = new Normalize([0.1f], [0.2f]).Apply(unit, new Random(0));
        Assert.Equal((20f / 255f - 0.1f) / 0.2f, normalized.Data[1], 5);
        Assert.Equal(new float[] { 5, 6 }, new CenterCrop(1, 2).Apply(new ImageBuffer(1, 3, 4, Enumerable.Range(0, 12).Select(v => (float)v).ToArray(), 255), new Random()).ToArray());
    }
}
