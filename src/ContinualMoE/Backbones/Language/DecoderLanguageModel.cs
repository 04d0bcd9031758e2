using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// A decoder-only language model with Hugging Face parameter names, frozen on construction. Subclasses are the
/// architectures (<see cref="Gpt2LanguageModel"/>, <see cref="LlamaLanguageModel"/>); load weights with
/// <see cref="LanguageModelFolder"/>.
/// </summary>
public abstract class DecoderLanguageModel : Module<Tensor, Tensor>, ITransformerBackbone
{
    protected DecoderLanguageModel(string name, DecoderConfig config, ScalarType dtype) : base(name)
    {
        Config = config;
        DType = dtype;
        Name = config.ModelType;
    }

    public DecoderConfig Config { get; }
    /// <summary>Dtype of the parameters and of the computation (float32, bfloat16 or float16).</summary>
    public ScalarType DType { get; }

    public string Name { get; set; }
    public long Width => Config.Width;
    public int Depth => Config.Depth;
    public int Heads => Config.Heads;

    public IReadOnlyList<LinearLayerShape> AdaptableLayers
    {
        get
        {
            var layers = new List<LinearLayerShape>();
            long attention = (long)Config.Heads * Config.HeadDim, keyValue = (long)Config.KeyValueHeads * Config.HeadDim;
            for (var block = 0; block < Config.Depth; block++)
            {
                LinearLayerShape Shape(string layer, long input, long output) => new(new LinearSite(block, layer), input, output);
                layers.Add(Shape(LinearLayers.Query, Width, attention));
                layers.Add(Shape(LinearLayers.Key, Width, keyValue));
                layers.Add(Shape(LinearLayers.Value, Width, keyValue));
                layers.Add(Shape(LinearLayers.Output, attention, Width));
                layers.Add(Shape(LinearLayers.MlpIn, Width, Config.MlpHidden));
                if (Config.Family == DecoderFamily.Llama) layers.Add(Shape(LinearLayers.MlpGate, Width, Config.MlpHidden));
                layers.Add(Shape(LinearLayers.MlpOut, Config.MlpHidden, Width));
            }
            return layers;
        }
    }

    /// <summary>Token ids [B, T] (int64) to logits and hidden states. With a cache, the ids continue the cached positions.
    /// An inference forward (no gradients) whose matrix products are small runs on one libtorch thread
    /// (<see cref="OneThreadLimit"/>); that changes no float32 number, and bf16 ones only as any thread count does.</summary>
    public LmOutput Forward(Tensor inputIds, LmForwardOptions? options = null) =>
        !is_grad_enabled() && SmallForInference(inputIds.numel())
            ? ComputeDevice.OnOneThread(() => ForwardOnTheseThreads(inputIds, options))
            : ForwardOnTheseThreads(inputIds, options);

    /// <summary>Whether an inference forward of this many new tokens is small enough for one thread (<see cref="OneThreadLimit"/>).</summary>
    public bool SmallForInference(long tokens) => tokens * ParameterCount <= OneThreadLimit;

    /// <summary>Inference forwards of at most this many multiply-adds (new tokens x the model's parameters) run on one
    /// thread (<see cref="ComputeDevice.OnOneThread"/>). A one-token generation step of a small model is a few hundred
    /// ops of microseconds each, and on two threads each pays an OpenMP fork and join that costs more than the op:
    /// generation of random LLaMAs at batch 8 on two cores was 1.2-1.7x faster on one thread at width 256 (30M per step)
    /// and 1.06-1.13x at width 512 (214M), level at width 1024 (1.5G) (docs/benchmarks.md, session 9). The limit stays
    /// well below where this machine stops gaining, because a machine with more cores gains from its threads sooner:
    /// 67M multiply-adds, a few milliseconds of one core, so that one token of GPT-2 small (124M) keeps every thread.</summary>
    internal const long OneThreadLimit = 1L << 26;

    /// <summary>The model's own parameters (the vocabulary table included): what one token costs in multiply-adds, about.</summary>
    public long ParameterCount => parameterCount ??= parameters().Sum(p => p.numel());
    private long? parameterCount;

    /// <summary>The forward on whatever threads libtorch has now (tests compare it with the one-thread inference forward).</summary>
    internal LmOutput ForwardOnTheseThreads(Tensor inputIds, LmForwardOptions? options)
    {
        options ??= new LmForwardOptions();
        if (inputIds.dim() != 2 || inputIds.dtype != ScalarType.Int64)
            throw new ContinualMoEException($"{Name}: input ids must be an int64 tensor [batch, tokens], got {inputIds.dtype} [{string.Join(", ", inputIds.shape)}]");
        var past = options.Cache?.Length ?? 0;
        if (past + inputIds.shape[1] > Config.MaxPositions)
            throw new ContinualMoEException($"{Name}: {past + inputIds.shape[1]} positions exceed the model's limit of {Config.MaxPositions}");
        using var scope = NewDisposeScope();
        if (inputIds.numel() > 0)
        {
            var (lowest, highest) = IdRange(inputIds);
            if (lowest < 0 || highest >= Config.VocabSize)
                throw new ContinualMoEException(
                    $"{Name}: token ids must lie in [0, {Config.VocabSize}) but range over [{lowest}, {highest}] (does the tokenizer belong to this model?)");
        }
        var positions = PositionIds(inputIds, past, options);
        if (DType != ScalarType.Float32 && (options.Adapters is not null || options.Prefixes is not null))
        {
            // As the ViT (issue 16 §1): what a method trains stays fp32; its hooks see fp32 and return fp32, cast here.
            var boundary = new PrecisionBoundary(DType, options.Prefixes, options.Adapters);
            options = options with { Prefixes = boundary.Prefixes, Adapters = boundary.Adapters };
        }
        var hidden = ForwardHidden(inputIds, past, positions, options);
        options.Cache?.Advance(inputIds.shape[1]);
        var tokens = inputIds.shape[1];
        if (options.FirstLogitPosition < 0 || options.FirstLogitPosition >= Math.Max(tokens, 1))
            throw new ContinualMoEException($"{Name}: first logit position {options.FirstLogitPosition} is outside the {tokens} new positions");
        var logits = options.ComputeLogits
            ? ProjectToVocabulary(hidden.narrow(1, options.FirstLogitPosition, tokens - options.FirstLogitPosition)).to(ScalarType.Float32)
            : null;
        return new LmOutput(logits?.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }

    /// <summary>Position ids [B, T] of the new tokens when they are not past, past + 1, ... (null then): the given ones, or the
    /// number of real tokens before each position under the attention mask.</summary>
    private Tensor? PositionIds(Tensor inputIds, long past, LmForwardOptions options)
    {
        long batch = inputIds.shape[0], tokens = inputIds.shape[1];
        if (options.AttentionMask is { } mask && (mask.dim() != 2 || mask.shape[0] != batch || mask.shape[1] != past + tokens))
            throw new ContinualMoEException($"{Name}: the attention mask must be [batch, cached + new positions] = [{batch}, {past + tokens}], got [{string.Join(", ", mask.shape)}]");
        if (options.NewTokenAttention is { } allowed && !(allowed.dim() is 2 or 3 && allowed.shape[^1] == tokens && allowed.shape[^2] == tokens && (allowed.dim() == 2 || allowed.shape[0] == batch)))
            throw new ContinualMoEException($"{Name}: new-token attention must be [{tokens}, {tokens}] or [{batch}, {tokens}, {tokens}], got [{string.Join(", ", allowed.shape)}]");
        if (options.PositionIds is { } given)
        {
            if (given.dim() != 2 || given.shape[0] != batch || given.shape[1] != tokens || given.dtype != ScalarType.Int64)
                throw new ContinualMoEException($"{Name}: position ids must be int64 [{batch}, {tokens}], got {given.dtype} [{string.Join(", ", given.shape)}]");
            if (given.numel() > 0 && IdRange(given) is var (lowest, highest) && (lowest < 0 || highest >= Config.MaxPositions))
                throw new ContinualMoEException($"{Name}: position ids range over [{lowest}, {highest}], outside the model's {Config.MaxPositions} positions");
            return given;
        }
        if (options.AttentionMask is not { } real) return null;
        return real.to(ScalarType.Int64).cumsum(1).sub(Scalars.Integer(1)).clamp_min(Scalars.Integer(0)).narrow(1, past, tokens);
    }

    /// <summary>Smallest and largest id. On the CPU a scan of the ids (no kernel launches: generation calls this once per
    /// token); elsewhere one aminmax.</summary>
    private static (long Lowest, long Highest) IdRange(Tensor ids)
    {
        if (ids.device_type == DeviceType.CPU && ids.is_contiguous())
        {
            long lowest = long.MaxValue, highest = long.MinValue;
            foreach (var id in ids.data<long>())
            {
                if (id < lowest) lowest = id;
                if (id > highest) highest = id;
            }
            return (lowest, highest);
        }
        var (min, max) = ids.aminmax();
        using (min)
        using (max)
            return (min.item<long>(), max.item<long>());
    }

    /// <summary>Logits [B, T, V] (float32) of a whole sequence; the plain model.</summary>
    public override Tensor forward(Tensor inputIds)
    {
        using var output = Forward(inputIds);
        return output.Logits!.alias();
    }

    public KeyValueCache NewCache() => new(Config.Depth);

    /// <summary>Freezes (or unfreezes) every parameter of the model.</summary>
    public void SetFrozen(bool frozen)
    {
        foreach (var p in parameters()) p.requires_grad = !frozen;
    }

    /// <summary>Embeddings, blocks and final norm: the normalised hidden states [B, T, D] of the new positions, whose ids
    /// are <paramref name="positions"/> [B, T], or past .. past+T-1 when null.</summary>
    protected abstract Tensor ForwardHidden(Tensor inputIds, long past, Tensor? positions, LmForwardOptions options);

    /// <summary>The trunk's token-embedding matrix [V, D], which a tied head reuses.</summary>
    protected abstract Tensor TokenEmbedding { get; }

    private TorchSharp.Modules.Linear? lm_head;

    /// <summary>Registers transformers' separate <c>lm_head</c> unless the config ties the head to the token embedding.
    /// Call after registering the trunk, so parameters come in transformers' order.</summary>
    protected void RegisterHead(ScalarType dtype)
    {
        if (Config.TieWordEmbeddings) return;
        lm_head = nn.Linear(Config.Width, Config.VocabSize, hasBias: false, dtype: dtype);
        register_module("lm_head", lm_head);
    }

    /// <summary>The language-model head (tied to the token embedding or separate).</summary>
    protected Tensor ProjectToVocabulary(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, TokenEmbedding) : lm_head.forward(hidden);

    /// <summary>Maps a checkpoint tensor name to this model's parameter name; null for tensors that are known to
    /// be unused (causal-mask buffers, a tied head stored twice, cached rotary frequencies).</summary>
    public abstract string? ParameterNameFor(string checkpointName);
}
