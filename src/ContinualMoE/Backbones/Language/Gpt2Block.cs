using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>transformers' <c>GPT2MLP</c>: c_fc, GELU (tanh approximation for "gelu_new"), c_proj.</summary>
public sealed class Gpt2Mlp : Module<Tensor, Tensor>
{
    private readonly HfConv1D c_fc;
    private readonly HfConv1D c_proj;
    private readonly bool tanhGelu;

    public Gpt2Mlp(DecoderConfig config, ScalarType dtype) : base(nameof(Gpt2Mlp))
    {
        c_fc = new HfConv1D(config.Width, config.MlpHidden, dtype);
        c_proj = new HfConv1D(config.MlpHidden, config.Width, dtype);
        tanhGelu = config.Activation != "gelu";
        register_module("c_fc", c_fc);
        register_module("c_proj", c_proj);
    }

    public override Tensor forward(Tensor x) => Forward(x, 0, null);

    public Tensor Forward(Tensor x, int block, ILinearAdapterProvider? adapters)
    {
        using var scope = NewDisposeScope();
        var hidden = AdaptedLinear.AddDelta(c_fc.forward(x), x, block, LinearLayers.MlpIn, adapters);
        hidden = tanhGelu ? TanhGelu(hidden) : functional.gelu(hidden);
        return AdaptedLinear.AddDelta(c_proj.forward(hidden), hidden, block, LinearLayers.MlpOut, adapters).MoveToOuterDisposeScope();
    }

    /// <summary>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), transformers' NewGELUActivation, as libtorch's fused
    /// gelu(approximate="tanh") kernel (one pass instead of seven element-wise ones).</summary>
    private static Tensor TanhGelu(Tensor x) => x.gelu(TorchSharp.Modules.GELU.Approximate.tanh);
}

/// <summary>transformers' <c>GPT2Block</c>: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
public sealed class Gpt2Block : Module<Tensor, Tensor>
{
    private readonly LayerNorm ln_1;
    private readonly Gpt2Attention attn;
    private readonly LayerNorm ln_2;
    private readonly Gpt2Mlp mlp;
    public int Index { get; }

    public Gpt2Block(int index, DecoderConfig config, ScalarType dtype) : base(nameof(Gpt2Block))
    {
        Index = index;
        ln_1 = LayerNorm(config.Width, config.NormEps, dtype: dtype);
        attn = new Gpt2Attention(config, dtype);
        ln_2 = LayerNorm(config.Width, config.NormEps, dtype: dtype);
        mlp = new Gpt2Mlp(config, dtype);
        register_module("ln_1", ln_1);
        register_module("attn", attn);
        register_module("ln_2", ln_2);
        register_module("mlp", mlp);
    }

    public override Tensor forward(Tensor x) => Forward(x, new LmForwardOptions());

    public Tensor Forward(Tensor x, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(attn.Forward(ln_1.forward(x), Index, options));
        return h.Plus(mlp.Forward(ln_2.forward(h), Index, options.Adapters)).MoveToOuterDisposeScope();
    }
}
