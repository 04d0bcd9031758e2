namespace ContinualMoE.Data.Transforms;

/// <summary>
/// How images become model inputs (<c>input</c> in a run config; the crop's smallest area is the run's
/// <c>crop_scale_min</c>). The defaults are the project's generated-benchmark pipeline: mean = std = 0.5, bilinear,
/// a straight resize at test time, no colour jitter. Paper presets state their official code's values, e.g.
/// HiDe-Prompt / NoRGa on CIFAR-100 (datasets.py build_cifar_transform): CIFAR mean/std, bicubic, brightness 63/255,
/// test resize-crop; on ImageNet-R (build_transform): mean 0, std 1 ([0,1] pixels), bilinear crops, bicubic
/// resize-crop at test; SMoPE (dataloaders/utils.py get_transform): mean 0, std 1, bilinear.
/// </summary>
public sealed record ImageSettings
{
    public float[] Mean { get; init; } = [.. ImagePipeline.VitMean];
    public float[] Std { get; init; } = [.. ImagePipeline.VitStd];
    /// <summary>Resampling of the training crop: bilinear or bicubic (torchvision interpolation=3).</summary>
    public string TrainInterpolation { get; init; } = "bilinear";
    /// <summary>Resampling at test time (and for un-augmented passes over training images).</summary>
    public string TestInterpolation { get; init; } = "bilinear";
    /// <summary>resize: straight resize to size x size; resize-crop: shorter side to floor(size x 256 / 224), then the
    /// centre size x size crop (torchvision Resize(int) + CenterCrop, the official test transform of HiDe-Prompt and of
    /// SMoPE on ImageNet-R/CUB).</summary>
    public string TestTransform { get; init; } = "resize";
    /// <summary>torchvision ColorJitter(brightness=s) after the crop and flip; 0 turns it off (HiDe-Prompt CIFAR: 63/255).</summary>
    public double BrightnessJitter { get; init; }
    /// <summary>torch: resizes as torch's interpolate without antialiasing (the project's default); pil: as PIL's
    /// Image.resize, which torchvision calls on the PIL images of the official pipelines (antialiased when shrinking,
    /// bicubic a = -0.5, 8-bit rounding; <see cref="PilResampling"/>), and brightness jitter truncated to 8 bits as PIL's
    /// ImageEnhance does. The paper presets set pil.</summary>
    public string Resampler { get; init; } = "torch";
    /// <summary>project: the loader's order and augmentation draws come from System.Random seeded per epoch and sample
    /// (the default). torch: from libtorch's generator, with the calls and the per-worker streams of a torch 1.13
    /// DataLoader over torchvision 0.14 transforms (<see cref="TorchEpochRandomness"/>); the paper presets set torch.</summary>
    public string Rng { get; init; } = "project";
    /// <summary>With <c>rng: torch</c>, the official DataLoader's num_workers whose per-worker seeding is reproduced
    /// (the official SMoPE and MoE_PromptCL scripts use 4); 0 is a single-process loader.</summary>
    public int TorchWorkers { get; init; } = 4;

    public static ResampleMode ParseInterpolation(string name, string setting) => name.Trim().ToLowerInvariant() switch
    {
        "bilinear" => ResampleMode.Bilinear,
        "bicubic" => ResampleMode.Bicubic,
        _ => throw new ContinualMoEException($"input.{setting} must be bilinear or bicubic, got '{name}'"),
    };

    /// <summary>True when <see cref="Resampler"/> is pil.</summary>
    public bool PilResampler => Resampler.Trim().ToLowerInvariant() switch
    {
        "torch" => false,
        "pil" => true,
        _ => throw new ContinualMoEException($"input.resampler must be torch or pil, got '{Resampler}'"),
    };

    /// <summary>True when <see cref="Rng"/> is torch.</summary>
    public bool TorchRng => Rng.Trim().ToLowerInvariant() switch
    {
        "project" => false,
        "torch" => true,
        _ => throw new ContinualMoEException($"input.rng must be project or torch, got '{Rng}'"),
    };

    /// <summary>The resampling of <paramref name="interpolation"/> (a setting's value) under <see cref="Resampler"/>.</summary>
    public ResampleMode Mode(string interpolation, string setting) => (ParseInterpolation(interpolation, setting), PilResampler) switch
    {
        (ResampleMode.Bilinear, true) => ResampleMode.PilBilinear,
        (ResampleMode.Bicubic, true) => ResampleMode.PilBicubic,
        (var mode, _) => mode,
    };

    public bool CropAtTest => TestTransform.Trim().ToLowerInvariant() switch
    {
        "resize" => false,
        "resize-crop" => true,
        _ => throw new ContinualMoEException($"input.test_transform must be resize or resize-crop, got '{TestTransform}'"),
    };

    /// <summary>Throws a one-line error naming the first bad setting.</summary>
    public void Validate()
    {
        if (Mean.Length != 3 || Std.Length != 3) throw new ContinualMoEException("input.mean and input.std need three values (R, G, B)");
        if (Std.Any(s => s <= 0)) throw new ContinualMoEException("input.std values must be positive");
        if (BrightnessJitter is < 0 or > 1) throw new ContinualMoEException($"input.brightness_jitter must be in [0, 1], got {BrightnessJitter}");
        ParseInterpolation(TrainInterpolation, "train_interpolation");
        ParseInterpolation(TestInterpolation, "test_interpolation");
        _ = CropAtTest;
        _ = PilResampler;
        _ = TorchRng;
        if (TorchWorkers < 0) throw new ContinualMoEException($"input.torch_workers must be 0 or more, got {TorchWorkers}");
    }
}
