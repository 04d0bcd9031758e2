using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// transformers' <c>LlamaAttention</c> (also Mistral and Qwen2): separate q/k/v projections (biases on Qwen2 or with
/// attention_bias), rotary embedding of q and k, grouped-query causal attention, o_proj.
/// </summary>
public sealed class LlamaAttention : Module<Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly int heads;
    private readonly int keyValueHeads;
    private readonly int headDim;

    public LlamaAttention(DecoderConfig config, ScalarType dtype) : base(nameof(LlamaAttention))
    {
        heads = config.Heads;
        keyValueHeads = config.KeyValueHeads;
        headDim = config.HeadDim;
        q_proj = Linear(config.Width, (long)heads * headDim, hasBias: config.QkvBias, dtype: dtype);
        k_proj = Linear(config.Width, (long)keyValueHeads * headDim, hasBias: config.QkvBias, dtype: dtype);
        v_proj = Linear(config.Width, (long)keyValueHeads * headDim, hasBias: config.QkvBias, dtype: dtype);
        o_proj = Linear((long)heads * headDim, config.Width, hasBias: config.OutputBias, dtype: dtype);
        register_module("q_proj", q_proj);
        register_module("k_proj", k_proj);
        register_module("v_proj", v_proj);
        register_module("o_proj", o_proj);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("LlamaAttention needs rotary angles: call Forward");

    /// <summary>x: [B, T, D] (already normed); cos and the signed sin (RotaryEmbedding.Angles) [T, d] or [B, 1, T, d] for the positions of x.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor signedSin, int block, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], tokens = x.shape[1];
        var adapters = options.Adapters;
        var q = AdaptedLinear.AddDelta(q_proj.forward(x), x, block, LinearLayers.Query, adapters);
        var k = AdaptedLinear.AddDelta(k_proj.forward(x), x, block, LinearLayers.Key, adapters);
        var v = AdaptedLinear.AddDelta(v_proj.forward(x), x, block, LinearLayers.Value, adapters);
        q = RotaryEmbedding.Apply(q.reshape(batch, tokens, heads, headDim).transpose(1, 2), cos, signedSin);
        k = RotaryEmbedding.Apply(k.reshape(batch, tokens, keyValueHeads, headDim).transpose(1, 2), cos, signedSin);
        v = v.reshape(batch, tokens, keyValueHeads, headDim).transpose(1, 2);
        var attended = CausalAttention.Attend(q, k, v, block, options);
        var merged = attended.transpose(1, 2).reshape(batch, tokens, (long)heads * headDim);
        return AdaptedLinear.AddDelta(o_proj.forward(merged), merged, block, LinearLayers.Output, adapters).MoveToOuterDisposeScope();
    }
}
