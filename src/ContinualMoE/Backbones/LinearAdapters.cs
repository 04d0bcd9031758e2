using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// Names one frozen linear layer of a transformer block, the same way for every backbone (ViT, GPT-2, LLaMA/Qwen),
/// so that a low-rank method written once adapts any of them. <see cref="Layer"/> is one of <see cref="LinearLayers"/>.
/// </summary>
public readonly record struct LinearSite(int Block, string Layer)
{
    public override string ToString() => $"blocks.{Block}.{Layer}";
}

/// <summary>A linear layer a backbone lets adapters change, with its input and output widths.</summary>
public sealed record LinearLayerShape(LinearSite Site, long InFeatures, long OutFeatures);

/// <summary>
/// The logical layer names of <see cref="LinearSite"/>. A backbone whose checkpoint fuses some of them (timm's qkv,
/// GPT-2's c_attn) still asks for each part separately and adds each delta to its slice of the fused output.
/// </summary>
public static class LinearLayers
{
    public const string Query = "attn.q";
    public const string Key = "attn.k";
    public const string Value = "attn.v";
    /// <summary>The attention output projection (timm proj, GPT-2 c_proj, LLaMA o_proj).</summary>
    public const string Output = "attn.out";
    /// <summary>The first MLP layer (timm fc1, GPT-2 c_fc, LLaMA up_proj).</summary>
    public const string MlpIn = "mlp.in";
    /// <summary>The gate of a gated MLP (LLaMA gate_proj); absent in ViT and GPT-2.</summary>
    public const string MlpGate = "mlp.gate";
    /// <summary>The last MLP layer (timm fc2, GPT-2 c_proj of the MLP, LLaMA down_proj).</summary>
    public const string MlpOut = "mlp.out";

    public static readonly IReadOnlyList<string> All = [Query, Key, Value, Output, MlpIn, MlpGate, MlpOut];
}

/// <summary>
/// The second hook of the backbones (beside <see cref="IAttentionPrefixProvider"/>): during one forward pass, each
/// adaptable linear layer hands its input to the provider and adds the returned delta to its frozen output,
/// y = W x + b + delta(x). LoRA-style methods (low-rank experts, SETA and its baselines) plug in here.
/// </summary>
public interface ILinearAdapterProvider
{
    /// <summary><paramref name="input"/> is the layer's input [..., InFeatures]; the result is [..., OutFeatures],
    /// or null to leave the layer unchanged. Called inside the block's dispose scope.</summary>
    Tensor? Delta(LinearSite site, Tensor input);

    /// <summary>False when <see cref="Delta"/> returns null for <paramref name="site"/> whatever the input, so that a
    /// caller can skip preparing the input (a reduced-precision backbone's cast to float32) for layers left alone.</summary>
    bool Adapts(LinearSite site) => true;

    /// <summary>
    /// Starts a stretch of forward passes without gradients during which the adapters do not change (a generation):
    /// the provider may compute once what every <see cref="Delta"/> needs (masked, scaled, concatenated factors) instead
    /// of per call and per token. The deltas stay the same numbers. Dispose the result to end it; null: nothing to hold.
    /// </summary>
    IDisposable? BeginInference() => null;
}

/// <summary>What every transformer backbone tells a method that adapts its linear layers, whatever its modality.</summary>
public interface ITransformerBackbone
{
    /// <summary>Registry or model name, for reports.</summary>
    string Name { get; }
    /// <summary>Hidden width of the residual stream.</summary>
    long Width { get; }
    int Depth { get; }
    int Heads { get; }
    /// <summary>Every linear layer that <see cref="ILinearAdapterProvider"/> can change, in block order.</summary>
    IReadOnlyList<LinearLayerShape> AdaptableLayers { get; }
}
