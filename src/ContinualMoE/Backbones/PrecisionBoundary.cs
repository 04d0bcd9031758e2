using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// The casts between a reduced-precision backbone and a method's fp32 modules, in one place for every method: the
/// backbone wraps the method's hooks in this when its weights are not fp32. Methods see fp32 queries and layer inputs
/// and return fp32 prefixes and deltas, as with an fp32 backbone; the backbone receives them in its compute type. The
/// casts are differentiable, so gradients reach the fp32 parameters (autocast's rule: the frozen matmuls in low
/// precision, what is learned in fp32). A prefix's logit transform and observer run on fp32 logits.
/// </summary>
internal sealed class PrecisionBoundary(ScalarType compute, IAttentionPrefixProvider? prefixes, ILinearAdapterProvider? adapters)
    : IAttentionPrefixProvider, ILinearAdapterProvider
{
    public IAttentionPrefixProvider? Prefixes => prefixes is null ? null : this;
    public ILinearAdapterProvider? Adapters => adapters is null ? null : this;

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        if (prefixes!.ForBlock(blockIndex, queries.to(ScalarType.Float32)) is not { } prefix) return null;
        var transform = prefix.LogitTransform;
        var observe = prefix.ObserveLogits;
        return new AttentionPrefix
        {
            Keys = prefix.Keys?.to(compute),
            Values = prefix.Values.to(compute),
            Logits = prefix.Logits?.to(compute),
            // Null stays null: a prefix of keys and values only keeps the fused attention kernel.
            LogitTransform = transform is null && observe is null ? null : logits =>
            {
                var full = logits.to(ScalarType.Float32);
                var transformed = transform?.Invoke(full) ?? full;
                observe?.Invoke(transformed);
                return transformed.to(compute);
            },
        };
    }

    public Tensor? Delta(LinearSite site, Tensor input) =>
        adapters!.Adapts(site) ? adapters.Delta(site, Float32(input))?.to(compute) : null;

    public bool Adapts(LinearSite site) => adapters!.Adapts(site);

    public IDisposable? BeginInference() => adapters!.BeginInference();

    private Tensor? lastInput;
    private Tensor? lastFloat32;

    /// <summary>The layer input in float32. Layers that read the same input (q, k and v; the MLP's in and gate) share one
    /// copy when no gradient is recorded (generation, evaluation); with gradients each layer casts its own, so that the
    /// backward pass rounds the input's gradient as it always has.</summary>
    private Tensor Float32(Tensor input)
    {
        if (is_grad_enabled()) return input.to(ScalarType.Float32);
        if (!ReferenceEquals(input, lastInput) || lastFloat32 is null || lastFloat32.IsInvalid)
        {
            lastInput = input;
            lastFloat32 = input.to(ScalarType.Float32);
        }
        return lastFloat32;
    }
}
