using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// Deep L2P++ (the CODA-Prompt repository's strengthened L2P, the variant SMoPE's paper compares against): prefix tuning
/// in blocks 0-4 instead of prompt tokens at the input; in every prompted block its own pool of M prompts of length L with
/// keys; per sample the top-N prompts by cosine similarity of the frozen query to that block's keys are used, each
/// split into L/2 prefix keys and L/2 prefix values and concatenated. Loss per block: mean over the selected keys of
/// 1 - cos(q, k), summed over blocks (weight 1). No task-specific forcing. Classifier on the class token.
/// Two backbone passes per test image.
/// </summary>
[ContinualMethod("deep-l2p", "Deep L2P++: per-block keyed prefix-prompt pools, top-k by the frozen query (CODA-Prompt repo)")]
public sealed class DeepL2P : LearnerBase
{
    public sealed record Options
    {
        public int[] Blocks { get; init; } = [0, 1, 2, 3, 4];
        public int PoolSize { get; init; } = 30;
        /// <summary>Prompt length L (20 = 10 prefix keys + 10 prefix values).</summary>
        public int PromptLength { get; init; } = 20;
        public int TopK { get; init; } = 5;
        public double KeyLossWeight { get; init; } = 1.0;
        /// <summary>Test-time batch-wise prompt voting (not in the CODA-Prompt repo; opt-in). Shown in the name.</summary>
        public bool BatchwisePrompt { get; init; }
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly Model model;

    public DeepL2P(MethodContext context) : this(context, context.Settings.Bind(new Options(), "deep-l2p")) { }
    private DeepL2P(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private DeepL2P(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        if (options.TopK < 1 || options.TopK > options.PoolSize)
            throw new ContinualMoEException($"deep-l2p: top_k must be between 1 and pool_size ({options.PoolSize}), got {options.TopK}");
        if (options.PromptLength % 2 != 0) throw new ContinualMoEException($"deep-l2p: prompt_length must be even, got {options.PromptLength}");
    }

    public override string Name => options.BatchwisePrompt ? "deep-l2p (batch-wise prompt voting)" : "deep-l2p";
    public Parameter Keys => model.Keys;
    public Parameter Prompts => model.Prompts;

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = "prompts",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("prompt pools", [model.Prompts, model.Keys]), new ParameterGroup("head", TrainableParameters(model.Head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate, Schedule = ScheduleKind.Cosine },
            Step = batch =>
            {
                var (logits, loss) = Forward(batch.Images, training: true);
                return new StepOutput(logits, loss);
            },
        },
    ];

    public (Tensor Logits, Tensor? KeyLoss) Forward(Tensor images, bool training, EvaluationContext? context = null)
    {
        using var query = FrozenFeatures(images, context);
        var batch = query.shape[0];
        var prefixes = new PrefixPrompts(Backbone.Config.Heads);
        Tensor? loss = null;
        for (var b = 0; b < model.Blocks.Count; b++)
        {
            var similarity = PromptMatching.Cosine(query, model.Keys[b]);                // [B, M]
            var selected = PromptMatching.TopK(similarity, options.TopK, !training && options.BatchwisePrompt);
            var chosen = model.Prompts[b].index_select(0, selected.reshape(-1))
                .reshape(batch, options.TopK, options.PromptLength, -1);                 // [B, K, L, D]
            var (k, v) = PrefixPrompts.Split(chosen);
            prefixes.Add(model.Blocks[b], k.reshape(batch, -1, k.shape[^1]), v.reshape(batch, -1, v.shape[^1]));
            if (training)
            {
                var term = PromptMatching.Selected(similarity, selected).negative().Plus(Scalars.Integer(1)).mean().mul(Scalars.Of(options.KeyLossWeight));
                loss = loss is null ? term : loss.Plus(term);
            }
        }
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = prefixes });
        return (model.Head.forward(output.Cls), loss);
    }

    /// <summary>The prompts each block picks for each image, [blocks, B, K].</summary>
    public Tensor SelectForTest(Tensor images, EvaluationContext? context = null)
    {
        using var noGrad = no_grad();
        using var query = FrozenFeatures(images, context);
        return stack(Enumerable.Range(0, model.Blocks.Count)
            .Select(b => PromptMatching.TopK(PromptMatching.Cosine(query, model.Keys[b]), options.TopK, options.BatchwisePrompt)).ToArray());
    }

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(Forward(images, training: false, context).Logits);

    protected override int BackbonePassesPerTestImage => 2;

    private sealed class Model : nn.Module
    {
        public readonly IReadOnlyList<int> Blocks;
        [TorchSharp.Utils.ComponentName(Name = "prompts")]
        public readonly Parameter Prompts;   // [blocks, M, L, D]
        [TorchSharp.Utils.ComponentName(Name = "keys")]
        public readonly Parameter Keys;      // [blocks, M, D]
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("DeepL2P")
        {
            var d = context.Backbone.EmbedDim;
            Blocks = context.PromptBlocks(options.Blocks, "deep-l2p");
            torch.random.manual_seed(context.Seed);
            // CODA-Prompt repo: prompts and keys uniform [0, 1).
            Prompts = new Parameter(rand(Blocks.Count, options.PoolSize, options.PromptLength, d));
            Keys = new Parameter(rand(Blocks.Count, options.PoolSize, d));
            Head = nn.Linear(d, context.ClassCount);
            register_parameter("prompts", Prompts);
            register_parameter("keys", Keys);
            register_module("head", Head);
        }
    }
}
