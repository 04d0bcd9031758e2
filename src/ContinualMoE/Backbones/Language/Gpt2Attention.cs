using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// transformers' <c>GPT2Attention</c>: fused c_attn (Conv1D, [D, 3D]) split into q, k, v; causal softmax(q k^T / sqrt(d)) v;
/// c_proj. Adapters see q, k and v as three layers: each delta is added to its slice of the fused output.
/// </summary>
public sealed class Gpt2Attention : Module<Tensor, Tensor>
{
    private readonly HfConv1D c_attn;
    private readonly HfConv1D c_proj;
    private readonly int heads;
    private readonly long width;

    public Gpt2Attention(DecoderConfig config, ScalarType dtype) : base(nameof(Gpt2Attention))
    {
        heads = config.Heads;
        width = config.Width;
        c_attn = new HfConv1D(width, 3 * width, dtype);
        c_proj = new HfConv1D(width, width, dtype);
        register_module("c_attn", c_attn);
        register_module("c_proj", c_proj);
    }

    public override Tensor forward(Tensor x) => Forward(x, 0, new LmForwardOptions());

    /// <summary>x: [B, T, D] (already layer-normed).</summary>
    public Tensor Forward(Tensor x, int block, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], tokens = x.shape[1], headDim = width / heads;
        var fused = c_attn.forward(x);
        var q = AdaptedLinear.AddDelta(fused.narrow(-1, 0, width), x, block, LinearLayers.Query, options.Adapters);
        var k = AdaptedLinear.AddDelta(fused.narrow(-1, width, width), x, block, LinearLayers.Key, options.Adapters);
        var v = AdaptedLinear.AddDelta(fused.narrow(-1, 2 * width, width), x, block, LinearLayers.Value, options.Adapters);
        Tensor Heads(Tensor t) => t.reshape(batch, tokens, heads, headDim).transpose(1, 2);
        var attended = CausalAttention.Attend(Heads(q), Heads(k), Heads(v), block, options);
        var merged = attended.transpose(1, 2).reshape(batch, tokens, width);
        var output = AdaptedLinear.AddDelta(c_proj.forward(merged), merged, block, LinearLayers.Output, options.Adapters);
        return output.MoveToOuterDisposeScope();
    }
}
