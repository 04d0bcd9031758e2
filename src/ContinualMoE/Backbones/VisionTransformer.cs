using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones;

/// <summary>What one forward pass should do beyond the plain backbone.</summary>
public sealed class VitForwardOptions
{
    /// <summary>Per-block prefix keys/values (prefix tuning, SMoPE experts, NoRGa gates).</summary>
    public IAttentionPrefixProvider? Prefixes { get; init; }

    /// <summary>Deltas added to the frozen linear layers (LoRA-style experts); works alongside <see cref="Prefixes"/>.</summary>
    public ILinearAdapterProvider? Adapters { get; init; }

    /// <summary>Prompt tokens [B|1, P, D] inserted right after the class token, after position embedding
    /// (prompt tuning as in L2P). They carry no position embedding.</summary>
    public Tensor? PromptTokens { get; init; }

    /// <summary>Blocks whose output tokens should be returned in <see cref="VitOutput.BlockTokens"/>.</summary>
    public IReadOnlySet<int>? CaptureBlocks { get; init; }

    /// <summary>Stop after this many blocks (the query pass of some methods needs only early layers). Null: all.</summary>
    public int? StopAfterBlocks { get; init; }
}

/// <summary>Output of <see cref="VisionTransformer.ForwardFeatures"/>.</summary>
public sealed record VitOutput(Tensor Cls, Tensor Tokens, IReadOnlyDictionary<int, Tensor> BlockTokens) : IDisposable
{
    public void Dispose()
    {
        Cls.Dispose();
        Tokens.Dispose();
        foreach (var t in BlockTokens.Values) t.Dispose();
    }
}

/// <summary>timm's <c>PatchEmbed</c>: a strided convolution, flattened to tokens.</summary>
public sealed class PatchEmbed : Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public PatchEmbed(VitConfig config) : base(nameof(PatchEmbed))
    {
        proj = Conv2d(config.InChannels, config.EmbedDim, config.PatchSize, stride: config.PatchSize);
        register_module("proj", proj);
    }

    public override Tensor forward(Tensor images)
    {
        using var map = proj.forward(images);    // [B, D, H/p, W/p]
        return map.flatten(2).transpose(1, 2);   // [B, N, D]
    }
}

/// <summary>
/// timm's <c>VisionTransformer</c> (class-token pooling, pre-norm blocks, LayerNorm eps 1e-6, exact GELU) with the
/// same parameter names, so timm checkpoints load unchanged: cls_token, pos_embed, patch_embed.proj, blocks.N.norm1,
/// blocks.N.attn.qkv, blocks.N.attn.proj, blocks.N.norm2, blocks.N.mlp.fc1/fc2, norm, head.
/// Frozen on construction: continual-learning methods train their own parameters around it.
/// </summary>
public sealed class VisionTransformer : Module<Tensor, Tensor>, ITransformerBackbone
{
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly PatchEmbed patch_embed;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Linear head;

    public VitConfig Config { get; }

    public VisionTransformer(VitConfig config, int? seed = null, VitInitialisation initialisation = VitInitialisation.Timm)
        : base(nameof(VisionTransformer))
    {
        Config = config.Validated();
        // A seed makes initialisation (only relevant when pretraining from scratch) reproducible.
        if (seed is int s) torch.random.manual_seed(s);
        cls_token = Parameter(zeros(1, 1, config.EmbedDim));
        pos_embed = Parameter(zeros(1, 1 + config.PatchCount, config.EmbedDim));
        patch_embed = new PatchEmbed(config);
        blocks = new ModuleList<VitBlock>(Enumerable.Range(0, config.Depth).Select(i => new VitBlock(i, config)).ToArray());
        norm = LayerNorm(config.EmbedDim, config.LayerNormEps);
        head = Linear(config.EmbedDim, config.ClassCount);
        register_parameter("cls_token", cls_token);
        register_parameter("pos_embed", pos_embed);
        register_module("patch_embed", patch_embed);
        register_module("blocks", blocks);
        register_module("norm", norm);
        register_module("head", head);
        Initialise(initialisation);
        SetFrozen(true);
    }

    public int Depth => Config.Depth;
    public int EmbedDim => Config.EmbedDim;

    string ITransformerBackbone.Name => Config.Name;
    long ITransformerBackbone.Width => Config.EmbedDim;
    int ITransformerBackbone.Heads => Config.Heads;

    /// <summary>q, k, v (the three parts of timm's fused qkv), the output projection, fc1 and fc2 of every block.</summary>
    public IReadOnlyList<LinearLayerShape> AdaptableLayers => adaptableLayers ??= Enumerable.Range(0, Config.Depth)
        .SelectMany(b => new[]
        {
            new LinearLayerShape(new LinearSite(b, LinearLayers.Query), Config.EmbedDim, Config.EmbedDim),
            new LinearLayerShape(new LinearSite(b, LinearLayers.Key), Config.EmbedDim, Config.EmbedDim),
            new LinearLayerShape(new LinearSite(b, LinearLayers.Value), Config.EmbedDim, Config.EmbedDim),
            new LinearLayerShape(new LinearSite(b, LinearLayers.Output), Config.EmbedDim, Config.EmbedDim),
            new LinearLayerShape(new LinearSite(b, LinearLayers.MlpIn), Config.EmbedDim, Config.MlpHidden),
            new LinearLayerShape(new LinearSite(b, LinearLayers.MlpOut), Config.MlpHidden, Config.EmbedDim),
        }).ToList();

    private IReadOnlyList<LinearLayerShape>? adaptableLayers;

    /// <summary>The number format of the frozen weights and activations (the <c>precision</c> run setting); the classifier
    /// head (pretraining only) and everything <see cref="ForwardFeatures"/> returns or hands to hooks stay fp32.</summary>
    public ScalarType ComputeType { get; private set; } = ScalarType.Float32;

    /// <summary>Casts the frozen weights (not the head) to <paramref name="type"/>; see <see cref="ComputePrecision"/>.</summary>
    public void UseComputeType(ScalarType type)
    {
        if (type == ComputeType) return;
        this.to(type);
        head.to(ScalarType.Float32);
        SetFrozen(true);
        ComputeType = type;
    }

    /// <summary>FLOPs of the passes run so far (the end-to-end benchmark reads and resets it).</summary>
    public BackboneWork Work { get; } = new();

    /// <summary>Freezes (or unfreezes) every backbone parameter. Methods' own parameters live outside this module.</summary>
    public void SetFrozen(bool frozen)
    {
        foreach (var p in parameters()) p.requires_grad = !frozen;
    }

    /// <summary>Sets every block's attention kernel (<see cref="AttentionKernel.Auto"/> is the default; Explicit is the
    /// reference for tests and <c>bench backbone --attention explicit</c>).</summary>
    public void UseAttentionKernel(AttentionKernel kernel)
    {
        foreach (var block in blocks) block.Attention.Kernel = kernel;
    }

    /// <summary>The classifier head (used when pretraining the backbone; methods bring their own heads).</summary>
    public Linear Head => head;

    /// <summary>Images [B, C, H, W] to the class-token logits of <see cref="Head"/>.</summary>
    public override Tensor forward(Tensor images)
    {
        using var output = ForwardFeatures(images);
        return head.forward(output.Cls);
    }

    /// <summary>Images [B, C, H, W] to final normalised tokens and the pre-logits class-token feature.</summary>
    public VitOutput ForwardFeatures(Tensor images, VitForwardOptions? options = null)
    {
        options ??= new VitForwardOptions();
        if (images.dim() != 4 || images.shape[1] != Config.InChannels || images.shape[2] != Config.ImageSize || images.shape[3] != Config.ImageSize)
            throw new ContinualMoEException(
                $"backbone {Config.Name} expects images [B, {Config.InChannels}, {Config.ImageSize}, {Config.ImageSize}], got [{string.Join(", ", images.shape)}]");
        var captured = new Dictionary<int, Tensor>();
        using var scope = NewDisposeScope();
        var (prefixes, adapters, lowPrecision) = (options.Prefixes, options.Adapters, ComputeType != ScalarType.Float32);
        if (lowPrecision)
        {
            // Casts at the boundary (issue 16 §1): images and prompt tokens in, fp32 hooks wrapped, fp32 features out.
            images = images.to(ComputeType);
            var boundary = new PrecisionBoundary(ComputeType, prefixes, adapters);
            (prefixes, adapters) = (boundary.Prefixes, boundary.Adapters);
        }
        var x = patch_embed.forward(images);
        var batch = x.shape[0];
        x = torch.cat([cls_token.expand(batch, -1, -1), x], dim: 1).Plus(pos_embed);
        if (options.PromptTokens is { } prompts)
        {
            if (lowPrecision) prompts = prompts.to(ComputeType);
            var expanded = prompts.shape[0] == batch ? prompts : prompts.expand(batch, -1, -1);
            x = torch.cat([x.narrow(1, 0, 1), expanded, x.narrow(1, 1, x.shape[1] - 1)], dim: 1);
        }
        var depth = Math.Min(options.StopAfterBlocks ?? Config.Depth, Config.Depth);
        Work.Count(Config, batch, depth, (int)(options.PromptTokens?.shape[1] ?? 0), prefixes is not null || adapters is not null || options.PromptTokens is not null);
        for (var i = 0; i < depth; i++)
        {
            x = blocks[i].Forward(x, prefixes, adapters);
            if (options.CaptureBlocks?.Contains(i) == true) captured[i] = (lowPrecision ? x.to(ScalarType.Float32) : x).MoveToOuterDisposeScope();
        }
        var tokens = norm.forward(x);
        if (lowPrecision) tokens = tokens.to(ScalarType.Float32);
        var cls = tokens.select(1, 0);
        return new VitOutput(cls.MoveToOuterDisposeScope(), tokens.MoveToOuterDisposeScope(), captured);
    }

    /// <summary>
    /// Resamples an absolute position embedding [1, prefix + g*g, D] to a new square grid, bicubic without
    /// antialiasing and align_corners false, like timm's <c>resample_abs_pos_embed</c>. Class-token rows are kept.
    /// </summary>
    public static Tensor ResizePositionEmbedding(Tensor posEmbed, int newGrid, int prefixTokens = 1)
    {
        using var scope = NewDisposeScope();
        var dim = posEmbed.shape[2];
        var oldCount = posEmbed.shape[1] - prefixTokens;
        var oldGrid = (int)Math.Round(Math.Sqrt(oldCount));
        if (oldGrid * oldGrid != oldCount)
            throw new ContinualMoEException($"position embedding with {oldCount} patch positions is not a square grid");
        var prefix = posEmbed.narrow(1, 0, prefixTokens);
        var grid = posEmbed.narrow(1, prefixTokens, oldCount).reshape(1, oldGrid, oldGrid, dim).permute(0, 3, 1, 2).to(float32);
        var resized = functional.interpolate(grid, size: [newGrid, newGrid], mode: InterpolationMode.Bicubic, align_corners: false);
        var flat = resized.permute(0, 2, 3, 1).reshape(1, (long)newGrid * newGrid, dim).to(posEmbed.dtype);
        return torch.cat([prefix, flat], dim: 1).MoveToOuterDisposeScope();
    }

    /// <summary>timm's default init (<c>VisionTransformer.init_weights</c>, mode 'timm'): trunc-normal(0.02) for linear
    /// weights and the position embedding, tiny class token, zero biases, unit LayerNorms; the patch convolution keeps
    /// PyTorch's default. Only matters without pretrained weights (pretraining from scratch, random-weight benchmarks).</summary>
    private void Initialise(VitInitialisation initialisation)
    {
        using var noGrad = torch.no_grad();
        Action<Tensor> truncatedNormal = initialisation switch
        {
            VitInitialisation.Timm => t => TruncatedNormal.Fill_(t, std: 0.02),
            // The faulty TorchSharp call itself, so that the RNG is consumed exactly as when the v3 backbone was made.
            VitInitialisation.TorchSharp0107Constant => t => init.trunc_normal_(t, std: 0.02),
            _ => throw new ArgumentOutOfRangeException(nameof(initialisation)),
        };
        truncatedNormal(pos_embed);
        init.normal_(cls_token, std: 1e-6);
        foreach (var (name, p) in named_parameters())
        {
            if (name.StartsWith("blocks.") || name.StartsWith("head."))
            {
                if (name.EndsWith(".weight") && p.dim() == 2) truncatedNormal(p);
                else if (name.EndsWith(".bias") && !name.Contains("norm")) init.zeros_(p);
            }
        }
    }
}

/// <summary>How a ViT built without weights is initialised.</summary>
public enum VitInitialisation
{
    /// <summary>timm's init with a correct truncated normal (<see cref="TruncatedNormal"/>): the default.</summary>
    Timm,

    /// <summary>What every randomly initialised ViT here got before the fix: TorchSharp 0.107's faulty
    /// <c>trunc_normal_</c>, i.e. every block weight, head weight and position-embedding entry exactly 0.02, with NaN
    /// where a uniform draw is exactly -1 (about 2^-24 per entry: a handful in ViT-B/16's 85 million, none in small ViTs). Kept only for
    /// the embedded default backbone's v3 pretraining recipe (<see cref="Experiments.DefaultBackbone"/>), so that a
    /// fresh machine builds the same backbone every measured figure was computed on.</summary>
    TorchSharp0107Constant,
}
