using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>transformers' <c>LlamaMLP</c>, SwiGLU (Shazeer 2020): down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
public sealed class LlamaMlp : Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    public LlamaMlp(DecoderConfig config, ScalarType dtype) : base(nameof(LlamaMlp))
    {
        gate_proj = Linear(config.Width, config.MlpHidden, hasBias: config.MlpBias, dtype: dtype);
        up_proj = Linear(config.Width, config.MlpHidden, hasBias: config.MlpBias, dtype: dtype);
        down_proj = Linear(config.MlpHidden, config.Width, hasBias: config.MlpBias, dtype: dtype);
        register_module("gate_proj", gate_proj);
        register_module("up_proj", up_proj);
        register_module("down_proj", down_proj);
    }

    public override Tensor forward(Tensor x) => Forward(x, 0, null);

    public Tensor Forward(Tensor x, int block, ILinearAdapterProvider? adapters)
    {
        using var scope = NewDisposeScope();
        var gate = AdaptedLinear.AddDelta(gate_proj.forward(x), x, block, LinearLayers.MlpGate, adapters);
        var up = AdaptedLinear.AddDelta(up_proj.forward(x), x, block, LinearLayers.MlpIn, adapters);
        var hidden = functional.silu(gate) * up;
        return AdaptedLinear.AddDelta(down_proj.forward(hidden), hidden, block, LinearLayers.MlpOut, adapters).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>LlamaDecoderLayer</c>: x + self_attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x)).</summary>
public sealed class LlamaBlock : Module<Tensor, Tensor>
{
    private readonly RmsNorm input_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly LlamaMlp mlp;
    public int Index { get; }

    public LlamaBlock(int index, DecoderConfig config, ScalarType dtype) : base(nameof(LlamaBlock))
    {
        Index = index;
        input_layernorm = new RmsNorm(config.Width, config.NormEps, dtype);
        self_attn = new LlamaAttention(config, dtype);
        post_attention_layernorm = new RmsNorm(config.Width, config.NormEps, dtype);
        mlp = new LlamaMlp(config, dtype);
        register_module("input_layernorm", input_layernorm);
        register_module("self_attn", self_attn);
        register_module("post_attention_layernorm", post_attention_layernorm);
        register_module("mlp", mlp);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("LlamaBlock needs rotary angles: call Forward");

    public Tensor Forward(Tensor x, Tensor cos, Tensor signedSin, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(self_attn.Forward(input_layernorm.forward(x), cos, signedSin, Index, options));
        return h.Plus(mlp.Forward(post_attention_layernorm.forward(h), Index, options.Adapters)).MoveToOuterDisposeScope();
    }
}
