using TorchSharp;

namespace ContinualMoE.Data.Transforms;

/// <summary>
/// An ordered list of transforms turning a <see cref="RawImage"/> into a float CHW array of fixed size.
/// Randomness is reproducible: with the project's draws sample <c>i</c> in an epoch with seed <c>s</c> always uses
/// <c>new Random(Seeds.Combine(s, i))</c>, so results do not depend on which thread processes which sample; with
/// torch's draws (<see cref="TorchRandom"/>) the caller passes the stream, as <see cref="DataLoader"/> does.
/// Pipelines are immutable and safe to share between threads.
/// </summary>
public sealed class ImagePipeline
{
    /// <summary>timm's normalisation for the AugReg ViT checkpoints (e.g. vit_base_patch16_224.augreg_in21k): mean = std = 0.5.</summary>
    public static readonly IReadOnlyList<float> VitMean = [0.5f, 0.5f, 0.5f];
    public static readonly IReadOnlyList<float> VitStd = [0.5f, 0.5f, 0.5f];

    /// <summary>The usual ImageNet statistics (torchvision / timm IMAGENET_DEFAULT_MEAN / STD).</summary>
    public static readonly IReadOnlyList<float> ImageNetMean = [0.485f, 0.456f, 0.406f];
    public static readonly IReadOnlyList<float> ImageNetStd = [0.229f, 0.224f, 0.225f];

    private readonly IImageTransform[] _transforms;

    public ImagePipeline(IEnumerable<IImageTransform> transforms) => _transforms = transforms.ToArray();
    public ImagePipeline(params IImageTransform[] transforms) : this((IEnumerable<IImageTransform>)transforms) { }

    public IReadOnlyList<IImageTransform> Transforms => _transforms;

    /// <summary>A new pipeline with <paramref name="transform"/> appended.</summary>
    public ImagePipeline Then(IImageTransform transform) => new(_transforms.Append(transform));

    /// <summary>
    /// Training preset. With augmentation: RandomResizedCrop(size, scale (cropScaleMin, 1)), horizontal flip p=0.5 and,
    /// if <see cref="ImageSettings.BrightnessJitter"/> is set, brightness jitter; without: a plain resize to size x size.
    /// Both then convert grey to RGB, scale to [0,1] and normalise. torchvision's crop default, 0.08, is what the papers
    /// use at 224 px; on 28-32 px images such crops keep a few pixels of the object, so small-image runs use a larger
    /// minimum (see RunConfig.CropScaleMin). <paramref name="settings"/> (null: defaults) gives the interpolation.
    /// </summary>
    public static ImagePipeline ForTraining(int size, bool augment, IReadOnlyList<float>? mean = null, IReadOnlyList<float>? std = null,
        double cropScaleMin = 0.08, ImageSettings? settings = null)
    {
        settings ??= new ImageSettings();
        var mode = settings.Mode(settings.TrainInterpolation, "train_interpolation");
        var steps = new List<IImageTransform> { new GreyToRgb() };
        if (augment)
        {
            steps.Add(new RandomResizedCrop(size, cropScaleMin, mode: mode));
            steps.Add(new HorizontalFlip(0.5));
            if (settings.BrightnessJitter > 0) steps.Add(new BrightnessJitter(settings.BrightnessJitter, truncateToBytes: settings.PilResampler));
        }
        else steps.Add(new Resize(size, size, mode));
        steps.Add(new ScaleToUnit());
        steps.Add(new Normalize(mean ?? VitMean, std ?? VitStd));
        return new ImagePipeline(steps);
    }

    /// <summary>Evaluation preset: grey to RGB, resize (straight to size x size, or shorter side to
    /// floor(size x 256 / 224) then the centre crop, per <see cref="ImageSettings.TestTransform"/>), scale to [0,1], normalise.</summary>
    public static ImagePipeline ForEvaluation(int size, IReadOnlyList<float>? mean = null, IReadOnlyList<float>? std = null,
        ImageSettings? settings = null)
    {
        settings ??= new ImageSettings();
        var mode = settings.Mode(settings.TestInterpolation, "test_interpolation");
        var steps = new List<IImageTransform> { new GreyToRgb() };
        if (settings.CropAtTest)
        {
            steps.Add(new ResizeShorterSide(size * 256 / 224, mode));
            steps.Add(new CenterCrop(size, size));
        }
        else steps.Add(new Resize(size, size, mode));
        steps.Add(new ScaleToUnit());
        steps.Add(new Normalize(mean ?? VitMean, std ?? VitStd));
        return new ImagePipeline(steps);
    }

    /// <summary>Runs the transforms on one image; <paramref name="epochSeed"/> and <paramref name="sampleIndex"/> seed the randomness.</summary>
    public ImageBuffer Apply(RawImage image, int epochSeed, int sampleIndex) =>
        Apply(image, new ProjectRandom(new Random(Seeds.Combine(epochSeed, sampleIndex))));

    /// <summary>Runs the transforms on one image, drawing from <paramref name="random"/> (a torch stream is shared by the
    /// samples of one DataLoader worker, so they must be processed in the worker's order). Every intermediate buffer goes back to the array pool; the caller may
    /// <see cref="ImageBuffer.Return"/> the result once it has copied it.</summary>
    public ImageBuffer Apply(RawImage image, AugmentationRandom random)
    {
        var buffer = ImageBuffer.FromRaw(image);
        for (var i = 0; i < _transforms.Length; i++)
        {
            ImageBuffer next;
            // Scale to [0, 1] and normalise in one pass over the image (same floats as the two passes).
            if (_transforms[i] is ScaleToUnit && i + 1 < _transforms.Length && _transforms[i + 1] is Normalize normalize)
            {
                next = normalize.ApplyAfterScaling(buffer);
                i++;
            }
            else next = _transforms[i].Apply(buffer, random);
            if (!ReferenceEquals(next.Data, buffer.Data)) buffer.Return();
            buffer = next;
        }
        return buffer;
    }

    /// <summary>The processed image as a CHW float array.</summary>
    public float[] Process(RawImage image, int epochSeed, int sampleIndex)
    {
        var buffer = Apply(image, epochSeed, sampleIndex);
        var values = buffer.ToArray();
        buffer.Return();
        return values;
    }

    /// <summary>The processed image as a [C,H,W] float32 tensor.</summary>
    public torch.Tensor ProcessToTensor(RawImage image, int epochSeed, int sampleIndex)
    {
        var buffer = Apply(image, epochSeed, sampleIndex);
        var tensor = torch.tensor(buffer.ToArray(), [buffer.Channels, buffer.Height, buffer.Width]);
        buffer.Return();
        return tensor;
    }
}
