using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>transformers' <c>GPT2Model</c>: token (wte) and learned position (wpe) embeddings, blocks h.N, final ln_f.</summary>
public sealed class Gpt2Transformer : Module<Tensor, Tensor>
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly ModuleList<Gpt2Block> h;
    private readonly LayerNorm ln_f;

    public Gpt2Transformer(DecoderConfig config, ScalarType dtype) : base(nameof(Gpt2Transformer))
    {
        wte = Embedding(config.VocabSize, config.Width, dtype: dtype);
        wpe = Embedding(config.MaxPositions, config.Width, dtype: dtype);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.Depth).Select(i => new Gpt2Block(i, config, dtype)).ToArray());
        ln_f = LayerNorm(config.Width, config.NormEps, dtype: dtype);
        register_module("wte", wte);
        register_module("wpe", wpe);
        register_module("h", h);
        register_module("ln_f", ln_f);
    }

    public Tensor TokenEmbedding => wte.weight!;

    public override Tensor forward(Tensor ids) => Forward(ids, 0, null, new LmForwardOptions());

    /// <summary>positions: [B, T] ids of the new tokens, or null for past .. past+T-1 in every row.</summary>
    public Tensor Forward(Tensor ids, long past, Tensor? positions, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        var positionEmbeddings = positions is null
            ? wpe.forward(Scalars.Arange(past, past + ids.shape[1], dtype: ScalarType.Int64)).unsqueeze(0)
            : wpe.forward(positions);
        var x = wte.forward(ids).Plus(positionEmbeddings);
        foreach (var block in h) x = block.Forward(x, options);
        return ln_f.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers' <c>GPT2LMHeadModel</c> (Radford et al. 2019) with the same parameter names (transformer.wte, transformer.h.N.attn.c_attn, ...),
/// so Hugging Face checkpoints load unchanged; the head is tied to wte unless the config says otherwise.
/// </summary>
public sealed class Gpt2LanguageModel : DecoderLanguageModel
{
    private readonly Gpt2Transformer transformer;

    public Gpt2LanguageModel(DecoderConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(Gpt2LanguageModel), config, dtype)
    {
        if (config.Family != DecoderFamily.Gpt2) throw new ContinualMoEException($"model_type '{config.ModelType}' is not GPT-2");
        transformer = new Gpt2Transformer(config, dtype);
        register_module("transformer", transformer);
        RegisterHead(dtype);
        SetFrozen(true);
    }

    protected override Tensor ForwardHidden(Tensor inputIds, long past, Tensor? positions, LmForwardOptions options) =>
        transformer.Forward(inputIds, past, positions, options);

    protected override Tensor TokenEmbedding => transformer.TokenEmbedding;

    public override string? ParameterNameFor(string checkpointName)
    {
        // Causal-mask buffers of older transformers versions carry no weights.
        if (checkpointName.EndsWith(".attn.bias", StringComparison.Ordinal) || checkpointName.EndsWith(".attn.masked_bias", StringComparison.Ordinal))
            return null;
        if (checkpointName == "lm_head.weight") return Config.TieWordEmbeddings ? null : checkpointName;
        // OpenAI's original GPT-2 files name the trunk without the "transformer." prefix.
        return checkpointName.StartsWith("transformer.", StringComparison.Ordinal) ? checkpointName : "transformer." + checkpointName;
    }
}
