using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// Analytic FLOPs of the forward passes a backbone has run, and of the backward passes they imply, for the end-to-end
/// benchmark's GFLOP/s (<see cref="VitConfig.ForwardFlops"/>: matmuls and patch projection). A pass with gradients on
/// and a hook (prefix, adapters or prompt tokens) counts one more forward's worth for its backward: with frozen weights,
/// backward computes the activations' gradients only (one matmul per forward matmul). Prefix keys are left out (a few
/// percent at the methods' lengths).
/// </summary>
public sealed class BackboneWork
{
    public double ForwardFlops { get; private set; }
    public double BackwardFlops { get; private set; }
    public long ForwardImages { get; private set; }

    internal void Count(VitConfig config, long batch, int depth, int promptTokens, bool backward)
    {
        var flops = batch * config.ForwardFlops(extraTokens: promptTokens) * depth / config.Depth;
        ForwardFlops += flops;
        ForwardImages += batch;
        if (backward && is_grad_enabled()) BackwardFlops += flops;
    }

    public void Reset() => (ForwardFlops, BackwardFlops, ForwardImages) = (0, 0, 0);
}
