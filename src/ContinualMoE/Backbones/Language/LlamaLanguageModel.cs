using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>transformers' <c>LlamaModel</c>: embed_tokens, layers.N, final RMS norm.</summary>
public sealed class LlamaTrunk : Module<Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaBlock> layers;
    private readonly RmsNorm norm;
    private readonly RotaryEmbedding rotary;

    public LlamaTrunk(DecoderConfig config, ScalarType dtype) : base(nameof(LlamaTrunk))
    {
        embed_tokens = Embedding(config.VocabSize, config.Width, dtype: dtype);
        layers = new ModuleList<LlamaBlock>(Enumerable.Range(0, config.Depth).Select(i => new LlamaBlock(i, config, dtype)).ToArray());
        norm = new RmsNorm(config.Width, config.NormEps, dtype);
        rotary = new RotaryEmbedding(config.HeadDim, config.Rope ?? new RopeSettings(10000));
        register_module("embed_tokens", embed_tokens);
        register_module("layers", layers);
        register_module("norm", norm);
    }

    public Tensor TokenEmbedding => embed_tokens.weight!;

    public override Tensor forward(Tensor ids) => Forward(ids, 0, null, new LmForwardOptions());

    /// <summary>positions: [B, T] ids of the new tokens, or null for past .. past+T-1 in every row.</summary>
    public Tensor Forward(Tensor ids, long past, Tensor? positions, LmForwardOptions options)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.forward(ids);
        var (cos, signedSin) = positions is null ? rotary.Angles(past, ids.shape[1], x.dtype) : rotary.Angles(positions, x.dtype);
        foreach (var block in layers) x = block.Forward(x, cos, signedSin, options);
        return norm.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers' <c>LlamaForCausalLM</c> (Touvron et al. 2023) and its relatives Mistral and Qwen2 (q/k/v biases), with the
/// same parameter names (model.embed_tokens, model.layers.N.self_attn.q_proj, ..., lm_head) so checkpoints load unchanged.
/// </summary>
public sealed class LlamaLanguageModel : DecoderLanguageModel
{
    private readonly LlamaTrunk model;

    public LlamaLanguageModel(DecoderConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(LlamaLanguageModel), config, dtype)
    {
        if (config.Family != DecoderFamily.Llama) throw new ContinualMoEException($"model_type '{config.ModelType}' is not in the LLaMA family");
        model = new LlamaTrunk(config, dtype);
        register_module("model", model);
        RegisterHead(dtype);
        SetFrozen(true);
    }

    protected override Tensor ForwardHidden(Tensor inputIds, long past, Tensor? positions, LmForwardOptions options) =>
        model.Forward(inputIds, past, positions, options);

    protected override Tensor TokenEmbedding => model.TokenEmbedding;

    public override string? ParameterNameFor(string checkpointName)
    {
        // Older checkpoints store the rotary frequencies, which we compute from the config.
        if (checkpointName.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) return null;
        if (checkpointName == "lm_head.weight" && Config.TieWordEmbeddings) return null;
        return checkpointName;
    }
}
