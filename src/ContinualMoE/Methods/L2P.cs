using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// L2P (Wang et al., "Learning to Prompt for Continual Learning", CVPR 2022), as in the PyTorch port l2p-pytorch:
/// a pool of M prompts of length L with learnable keys; the frozen backbone's class token (a separate pass without
/// prompts) is the query; the top-N prompts by cosine similarity are prepended as prompt tokens (prompt tuning, after
/// the class token, without position embedding); the classifier reads the mean of the prompt tokens' final outputs.
/// Loss: cross-entropy (old classes masked) - lambda * sum of the selected keys' cosine similarities / B (the port's
/// surrogate "pull constraint"). Two backbone passes per test image.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default -0.1, split Fashion-MNIST +0.25.
[ContinualMethod("l2p", "L2P: keyed prompt pool, top-k prompt tokens chosen by the frozen query (CVPR 2022)", Bf16Safe = true)]
public sealed class L2P : LearnerBase
{
    public sealed record Options
    {
        public int PoolSize { get; init; } = 10;
        public int PromptLength { get; init; } = 5;
        public int TopK { get; init; } = 5;
        /// <summary>lambda of the key surrogate loss (port: pull_constraint_coeff 0.1).</summary>
        public double KeyLossWeight { get; init; } = 0.1;
        /// <summary>Task-specific prompt masking during training (port's use_prompt_mask; false in its CIFAR config):
        /// task t trains prompts t*K..t*K+K-1 whatever the query says.</summary>
        public bool PromptMask { get; init; }
        /// <summary>Test-time batch-wise prompt voting (port default true for CIFAR; off here because it shares
        /// information across test samples). Shown in the method's name when on.</summary>
        public bool BatchwisePrompt { get; init; }
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly Model model;

    public L2P(MethodContext context) : this(context, context.Settings.Bind(new Options(), "l2p")) { }
    private L2P(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private L2P(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        if (options.TopK < 1 || options.TopK > options.PoolSize)
            throw new ContinualMoEException($"l2p: top_k must be between 1 and pool_size ({options.PoolSize}), got {options.TopK}");
    }

    public override string Name => options.BatchwisePrompt ? "l2p (batch-wise prompt voting)" : "l2p";
    public Parameter Keys => model.Keys;
    public Parameter Prompts => model.Prompts;
    public Linear Head => model.Head;

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = "prompts",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("prompt pool", [model.Prompts, model.Keys]), new ParameterGroup("head", TrainableParameters(model.Head))],
            // The port trains with Adam and a constant learning rate.
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate },
            Step = batch => TrainStep(batch, task),
        },
    ];

    private StepOutput TrainStep(Data.Batch batch, TaskContext task)
    {
        var query = FrozenFeatures(batch.Images);
        var similarity = PromptMatching.Cosine(query, model.Keys);                        // [B, M]
        var first = task.TaskIndex * options.TopK;
        var selected = options.PromptMask && first + options.TopK <= options.PoolSize
            ? PromptMatching.Forced(query.shape[0], first, options.TopK, query.device)
            : PromptMatching.TopK(similarity, options.TopK);
        var logits = Forward(batch.Images, selected);
        var pull = PromptMatching.Selected(similarity, selected).sum().div(Scalars.Integer(query.shape[0]));
        return new StepOutput(logits, pull.mul(Scalars.Of(-options.KeyLossWeight)));
    }

    /// <summary>Indices of the prompts the query picks at test time, [B, K].</summary>
    public Tensor SelectForTest(Tensor images, EvaluationContext? context = null)
    {
        using var query = FrozenFeatures(images, context);
        using var similarity = PromptMatching.Cosine(query, model.Keys);
        return PromptMatching.TopK(similarity, options.TopK, options.BatchwisePrompt);
    }

    /// <summary>Logits with the given prompts [B, K] prepended as tokens.</summary>
    public Tensor Forward(Tensor images, Tensor selected)
    {
        long batch = images.shape[0], k = selected.shape[1];
        var length = model.Prompts.shape[1];
        var tokens = model.Prompts.index_select(0, selected.reshape(-1)).reshape(batch, k * length, -1);
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { PromptTokens = tokens });
        var promptOutputs = output.Tokens.narrow(1, 1, k * length);                       // positions 1..1+P
        return model.Head.forward(promptOutputs.mean([1]));
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        using var selected = SelectForTest(images, context);
        return new Prediction(Forward(images, selected));
    }

    protected override int BackbonePassesPerTestImage => 2;

    private sealed class Model : nn.Module
    {
        [TorchSharp.Utils.ComponentName(Name = "prompts")]
        public readonly Parameter Prompts;   // [M, L, D]
        [TorchSharp.Utils.ComponentName(Name = "keys")]
        public readonly Parameter Keys;      // [M, D]
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("L2P")
        {
            var d = context.Backbone.EmbedDim;
            torch.random.manual_seed(context.Seed);
            // The port initialises prompts and keys uniform in [-1, 1].
            Prompts = new Parameter(rand(options.PoolSize, options.PromptLength, d) * 2 - 1);
            Keys = new Parameter(rand(options.PoolSize, d) * 2 - 1);
            Head = nn.Linear(d, context.ClassCount);
            register_parameter("prompts", Prompts);
            register_parameter("keys", Keys);
            register_module("head", Head);
        }
    }
}
