using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// DualPrompt (Wang et al., ECCV 2022) with prefix tuning: a G(eneral)-prompt shared by all tasks in blocks 0-1 and a
/// pool of E(xpert)-prompts, one per task, in blocks 2-4, each with a learnable key. Training uses the true task's
/// E-prompt and pulls its key towards the frozen query (loss CE - lambda * mean cos(q, k_t), lambda 1 as in the port);
/// at test time the E-prompt of the most similar key is used (a separate query pass: two backbone passes per image).
/// Prefix convention of the PyTorch port: a prompt of length L gives L prefix keys and L prefix values per block.
/// The classifier reads the class token.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default +0.0, split Fashion-MNIST +0.0.
[ContinualMethod("dualprompt", "DualPrompt: shared G-prompt + task-keyed E-prompts, prefix tuning (ECCV 2022)", Bf16Safe = true)]
public sealed class DualPrompt : LearnerBase
{
    public sealed record Options
    {
        public int[] GBlocks { get; init; } = [0, 1];
        /// <summary>Prefix key/value pairs of the G-prompt per block (paper L_g = 5; port g_prompt_length 5).</summary>
        public int GLength { get; init; } = 5;
        public int[] EBlocks { get; init; } = [2, 3, 4];
        /// <summary>Prefix key/value pairs of each E-prompt per block (paper L_e = 20; the CODA-Prompt repo's DualPrompt
        /// uses 40 = 20 keys + 20 values).</summary>
        public int ELength { get; init; } = 20;
        /// <summary>E-prompt pool size (one per task; port size 10).</summary>
        public int PoolSize { get; init; } = 10;
        /// <summary>lambda of the key matching loss (port pull_constraint_coeff 1.0).</summary>
        public double KeyLossWeight { get; init; } = 1.0;
        /// <summary>Test-time batch-wise prompt voting (port default true; off here). Shown in the name when on.</summary>
        public bool BatchwisePrompt { get; init; }
        /// <summary>At test time match only the keys of tasks trained so far (the port matches all keys, including
        /// untrained ones).</summary>
        public bool MatchTrainedKeysOnly { get; init; } = true;
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly Model model;

    public DualPrompt(MethodContext context) : this(context, context.Settings.Bind(new Options(), "dualprompt")) { }
    private DualPrompt(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private DualPrompt(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        if (context.TaskCount > options.PoolSize)
            throw new ContinualMoEException($"dualprompt: {context.TaskCount} tasks need an E-prompt pool of at least that size (pool_size {options.PoolSize})");
    }

    public override string Name => options.BatchwisePrompt ? "dualprompt (batch-wise prompt voting)" : "dualprompt";
    public Parameter Keys => model.Keys;
    public Parameter GPrompts => model.G;
    public Parameter EPrompts => model.E;

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        if (task.TaskIndex >= options.PoolSize)
            throw new ContinualMoEException($"dualprompt: task {task.TaskIndex + 1} has no E-prompt (pool_size {options.PoolSize})");
        return
        [
            new TrainingPhase
            {
                Name = "prompts",
                Epochs = options.Epochs ?? Context.Training.Epochs,
                Parameters = [new ParameterGroup("prompts", [model.G, model.E, model.Keys]), new ParameterGroup("head", TrainableParameters(model.Head))],
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate },
                Step = batch => TrainStep(batch, task),
            },
        ];
    }

    private StepOutput TrainStep(Data.Batch batch, TaskContext task)
    {
        var query = FrozenFeatures(batch.Images);
        var similarity = PromptMatching.Cosine(query, model.Keys);
        var selected = PromptMatching.Forced(query.shape[0], task.TaskIndex, 1, query.device);
        var logits = Forward(batch.Images, selected);
        var pull = PromptMatching.Selected(similarity, selected).mean();
        return new StepOutput(logits, pull.mul(Scalars.Of(-options.KeyLossWeight)));
    }

    /// <summary>The E-prompt (= task) each image's query picks, [B, 1].</summary>
    public Tensor SelectForTest(Tensor images, int tasksTrained, EvaluationContext? context = null)
    {
        using var query = FrozenFeatures(images, context);
        using var similarity = PromptMatching.Cosine(query, model.Keys);
        return PromptMatching.TopK(similarity, 1, options.BatchwisePrompt, options.MatchTrainedKeysOnly ? Math.Max(1, tasksTrained) : null);
    }

    /// <summary>Class logits with the G-prompt and the selected E-prompts [B, 1].</summary>
    public Tensor Forward(Tensor images, Tensor selected)
    {
        var prefixes = new PrefixPrompts(Backbone.Config.Heads);
        for (var i = 0; i < model.GBlocks.Count; i++)
            prefixes.Add(model.GBlocks[i], model.G[i].narrow(0, 0, options.GLength).unsqueeze(0), model.G[i].narrow(0, options.GLength, options.GLength).unsqueeze(0));
        var rows = selected.select(1, 0);
        for (var i = 0; i < model.EBlocks.Count; i++)
        {
            var e = model.E[i].index_select(0, rows);                                     // [B, 2 L_e, D]
            prefixes.Add(model.EBlocks[i], e.narrow(1, 0, options.ELength), e.narrow(1, options.ELength, options.ELength));
        }
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = prefixes });
        return model.Head.forward(output.Cls);
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        var selected = SelectForTest(images, context.TasksTrained, context);
        return new Prediction(Forward(images, selected), selected.select(1, 0).clone());
    }

    protected override int BackbonePassesPerTestImage => 2;
    protected override long ParametersAddedPerTask => model.EBlocks.Count * 2L * options.ELength * Backbone.EmbedDim + Backbone.EmbedDim;

    private sealed class Model : nn.Module
    {
        public readonly IReadOnlyList<int> GBlocks, EBlocks;
        [TorchSharp.Utils.ComponentName(Name = "g_prompts")]
        public readonly Parameter G;      // [G blocks, 2 L_g, D]: keys then values
        [TorchSharp.Utils.ComponentName(Name = "e_prompts")]
        public readonly Parameter E;      // [E blocks, M, 2 L_e, D]
        [TorchSharp.Utils.ComponentName(Name = "keys")]
        public readonly Parameter Keys;   // [M, D]
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("DualPrompt")
        {
            var d = context.Backbone.EmbedDim;
            GBlocks = context.PromptBlocks(options.GBlocks, "dualprompt", "g_blocks", emptyAllowed: true);
            EBlocks = context.PromptBlocks(options.EBlocks, "dualprompt", "e_blocks", emptyAllowed: true);
            torch.random.manual_seed(context.Seed);
            // The port initialises prompts and keys uniform in [-1, 1].
            G = new Parameter(rand(GBlocks.Count, 2 * options.GLength, d) * 2 - 1);
            E = new Parameter(rand(EBlocks.Count, options.PoolSize, 2 * options.ELength, d) * 2 - 1);
            Keys = new Parameter(rand(options.PoolSize, d) * 2 - 1);
            Head = nn.Linear(d, context.ClassCount);
            register_parameter("g_prompts", G);
            register_parameter("e_prompts", E);
            register_parameter("keys", Keys);
            register_module("head", Head);
        }
    }
}
