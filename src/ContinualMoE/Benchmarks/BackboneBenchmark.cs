using TorchSharp;
using System.Diagnostics;
using ContinualMoE.Backbones;
using static TorchSharp.torch;

namespace ContinualMoE.Benchmarks;

/// <summary>Figures of one backbone benchmark, all measured in the same process.</summary>
public sealed record BackboneBenchmarkResult(
    string Config, int BatchSize, int Threads, string Precision,
    double ForwardImagesPerSecond, double ForwardBackwardImagesPerSecond,
    double ForwardGflopsPerImage, double ForwardAchievedGflops, double TrainAchievedGflops,
    double MatmulGflops)
{
    /// <summary>Achieved forward GFLOP/s over the same machine's fp32 matmul GFLOP/s.</summary>
    public double ForwardFractionOfMatmul => ForwardAchievedGflops / MatmulGflops;

    /// <summary>The attention kernel measured (Auto: libtorch's fused kernel, as runs use it).</summary>
    public AttentionKernel Attention { get; init; }
}

/// <summary>
/// Measures a ViT's forward (inference) and forward+backward throughput. The backward pass is the one prompt methods
/// pay: the backbone is frozen, gradients flow through every block into a prefix (length 5 in every block).
/// Forward+backward is counted as two forward passes of FLOPs: with the weights frozen, backward computes only the
/// gradients of the activations (one matmul per forward matmul), not those of the weights (the usual third).
/// </summary>
public static class BackboneBenchmark
{
    public static BackboneBenchmarkResult Run(VitConfig config, int batchSize, Device device, bool bfloat16 = false,
        double secondsPerMeasurement = 3.0, int threads = 0, AttentionKernel attention = AttentionKernel.Auto)
    {
        if (threads > 0) set_num_threads(threads);
        var matmul = MeasureMatmulGflops(device, secondsPerMeasurement);
        using var vit = new VisionTransformer(config, seed: 0);
        vit.UseAttentionKernel(attention);
        vit.to(device);
        // The runs' mechanism (precision setting): bf16 weights, fp32 images, prefix and features cast at the boundary.
        if (bfloat16) vit.UseComputeType(ScalarType.BFloat16);
        using var images = randn(batchSize, config.InChannels, config.ImageSize, config.ImageSize, device: device);

        var forward = ImagesPerSecond(batchSize, secondsPerMeasurement, () =>
        {
            using var inference = inference_mode();
            using var output = vit.ForwardFeatures(images);
        });

        var prefixKeys = (randn(1, config.Heads, 5, config.HeadDim, device: device) * 0.02).requires_grad_();
        var prefixValues = (randn(1, config.Heads, 5, config.HeadDim, device: device) * 0.02).requires_grad_();
        var provider = new SharedPrefix(prefixKeys, prefixValues);
        var train = ImagesPerSecond(batchSize, secondsPerMeasurement, () =>
        {
            using var scope = NewDisposeScope();
            using var output = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = provider });
            output.Cls.to(ScalarType.Float32).square().mean().backward();
            prefixKeys.grad?.zero_();
            prefixValues.grad?.zero_();
        });

        var flops = config.ForwardFlops() / 1e9;
        return new BackboneBenchmarkResult(config.Name, batchSize, get_num_threads(), bfloat16 ? "bf16" : "fp32",
            forward, train, flops, forward * flops, train * 2 * config.ForwardFlops(extraKeys: 5) / 1e9, matmul) { Attention = attention };
    }

    /// <summary>GFLOP/s of a 512x768 by 768x3072 matmul (a ViT-B MLP layer for a batch of tokens), fp32 unless
    /// <paramref name="dtype"/> says otherwise.</summary>
    public static double MeasureMatmulGflops(Device device, double seconds, ScalarType dtype = ScalarType.Float32)
    {
        using var a = randn(512, 768, device: device).to(dtype);
        using var b = randn(768, 3072, device: device).to(dtype);
        var perCall = 2.0 * 512 * 768 * 3072;
        var calls = Repeat(seconds, () => { using var c = a.matmul(b); });
        return calls.perSecond * perCall / 1e9;
    }

    private static double ImagesPerSecond(int batchSize, double seconds, Action step) => Repeat(seconds, step).perSecond * batchSize;

    /// <summary>Runs <paramref name="step"/> twice to warm up, then for about <paramref name="seconds"/>.</summary>
    private static (int calls, double perSecond) Repeat(double seconds, Action step)
    {
        step();
        step();
        var clock = Stopwatch.StartNew();
        var calls = 0;
        do { step(); calls++; } while (clock.Elapsed.TotalSeconds < seconds);
        return (calls, calls / clock.Elapsed.TotalSeconds);
    }

    private sealed class SharedPrefix(Tensor keys, Tensor values) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) => AttentionPrefix.FromKeysAndValues(keys, values);
    }
}
