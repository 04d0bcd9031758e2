using ContinualMoE.Data;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Data;

public class ImageSettingsTests
{
    [Theory]
    [InlineData(300, 200, 256, 384, 256)]
    [InlineData(200, 300, 256, 256, 384)]
    [InlineData(32, 32, 256, 256, 256)]
    [InlineData(333, 500, 256, 256, 384)] // int(256 * 500 / 333) = 384 (truncated, as torchvision)
    public void ResizeShorterSideKeepsTheAspectRatioAsTorchvision(int height, int width, int size, int outH, int outW)
    {
        Assert.Equal((outH, outW), new ResizeShorterSide(size).OutputFor(height, width));
    }

    [Fact]
    public void ResizeCropTestTransformIsShorterSideResizeThenCentreCrop()
    {
        var image = TestFiles.Pattern(60, 40, 3, seed: 2); // 60 wide, 40 high
        var settings = new ImageSettings { TestTransform = "resize-crop", TestInterpolation = "bicubic", Mean = [0, 0, 0], Std = [1, 1, 1] };
        var ours = ImagePipeline.ForEvaluation(32, settings.Mean, settings.Std, settings).Process(image, 0, 0);
        // 32 x 256 / 224 = 36: 40x60 -> 36x54, then the centre 32x32.
        var manual = new ImagePipeline(new GreyToRgb(), new ResizeShorterSide(36, ResampleMode.Bicubic), new CenterCrop(32, 32),
            new ScaleToUnit()).Process(image, 0, 0);
        Assert.Equal(manual, ours);
        var straight = ImagePipeline.ForEvaluation(32, settings.Mean, settings.Std, settings with { TestTransform = "resize" }).Process(image, 0, 0);
        Assert.Equal(3 * 32 * 32, straight.Length);
        Assert.NotEqual(straight, ours);
    }

    [Fact]
    public void NormalisationAndJitterFollowTheSettings()
    {
        var image = TestFiles.Pattern(16, 16, 3, seed: 4);
        var unit = new ImageSettings { Mean = [0, 0, 0], Std = [1, 1, 1] };
        var pixels = ImagePipeline.ForEvaluation(16, unit.Mean, unit.Std, unit).Process(image, 0, 0);
        Assert.InRange(pixels.Min(), 0f, 1f);
        Assert.InRange(pixels.Max(), 0f, 1f);
        var defaults = ImagePipeline.ForEvaluation(16).Process(image, 0, 0);
        for (var i = 0; i < pixels.Length; i++) Assert.Equal((pixels[i] - 0.5f) / 0.5f, defaults[i], 5);
        Assert.DoesNotContain(ImagePipeline.ForTraining(16, true).Transforms, t => t is BrightnessJitter);
        Assert.Contains(ImagePipeline.ForTraining(16, true, settings: new ImageSettings { BrightnessJitter = 63 / 255.0 }).Transforms,
            t => t is BrightnessJitter);
    }

    [Fact]
    public void RunConfigReadsInputAndClassOrderAndRejectsBadValues()
    {
        var config = RunConfig.FromJson("""{"input": {"mean": [0, 0, 0], "std": [1, 1, 1], "test_transform": "resize-crop"}, "class_order": "numpy"}""", "test");
        Assert.Equal([0f, 0f, 0f], config.Input.Mean);
        Assert.True(config.Input.CropAtTest);
        Assert.Equal("bilinear", config.Input.TrainInterpolation);
        Assert.Equal("numpy", config.ClassOrder);
        Assert.Equal(new ImageSettings().Mean, new RunConfig().Input.Mean); // default stays mean = std = 0.5
        Assert.Throws<ContinualMoEException>(() => RunConfig.FromJson("""{"input": {"means": [0, 0, 0]}}""", "test"));
        var e = Assert.Throws<ContinualMoEException>(() => new ImageSettings { TrainInterpolation = "nearest" }.Validate());
        Assert.Contains("input.train_interpolation", e.Message);
        Assert.Throws<ContinualMoEException>(() => new ImageSettings { Std = [1, 0, 1] }.Validate());
    }
}
