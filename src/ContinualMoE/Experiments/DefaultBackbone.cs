using ContinualMoE.Backbones;
using ContinualMoE.Data.Generated;

namespace ContinualMoE.Experiments;

/// <summary>
/// The embedded default backbone: a small ViT pretrained from scratch on the generated benchmark's upstream classes
/// (disjoint from its continual classes), created on first use and cached, so a fresh clone needs no download.
/// The recipe is fixed here so every machine builds the same backbone.
/// </summary>
public static class DefaultBackbone
{
    public const int UpstreamClasses = 40;
    public const int TrainPerClass = 120;
    public const int TestPerClass = 25;
    public const int DataSeed = 7;
    /// <summary>The v3 recipe. It starts from <see cref="VitInitialisation.TorchSharp0107Constant"/> (the faulty init every
    /// random ViT had when v3 was made), so that the cached backbone and every figure measured on it stay reproducible;
    /// a v4 backbone should start from timm's init.</summary>
    /// <remarks>Only rounding breaks the symmetry of that constant init, so the backbone this recipe gives depends on the
    /// kernels' summation order: with MKL's AVX-512 kernels on the project's AMD CPUs it reached 42.9 % train accuracy
    /// (SMoPE 42.40 on the embedded default) against 57.4 % (SMoPE 58.40) with MKL's own kernels, which built every cached
    /// v3 backbone. So it is pretrained with MKL's own kernels (<see cref="RecipeNeedsMklsOwnKernels"/>).</remarks>
    public static readonly PretrainSettings Settings = new(Epochs: 8, BatchSize: 128, LearningRate: 1e-3, WeightDecay: 0.05, LabelSmoothing: 0.1, Seed: 0,
        Initialisation: VitInitialisation.TorchSharp0107Constant);

    /// <summary>What <see cref="MklCpuDispatch.KeepOwnChoice"/> is told when pretraining with the v3 recipe's init.</summary>
    public const string RecipeNeedsMklsOwnKernels = "the default backbone's v3 pretraining recipe";

    /// <summary>Pretraining with the v3 recipe's init keeps MKL's own kernels for the process (and fails in a process that
    /// has switched them); any other init leaves the choice alone.</summary>
    public static void KeepMklsOwnKernelsIfNeeded(PretrainSettings settings)
    {
        if (settings.Initialisation == VitInitialisation.TorchSharp0107Constant) MklCpuDispatch.KeepOwnChoice(RecipeNeedsMklsOwnKernels);
    }

    public static string CachePath(string config) =>
        Path.Combine(CacheDirectory.Sub("backbones"), $"{config}-generated-upstream-v3.safetensors");

    public static GeneratedBenchmark UpstreamData(int imageSize) =>
        GeneratedBenchmark.Create(DataSeed, UpstreamClasses, continualClasses: 1, TrainPerClass, TestPerClass, imageSize);
}
