using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// CODA-Prompt (Smith et al., "COntinual Decomposed Attention-based Prompting", CVPR 2023), as in the official code:
/// per prompted block (0-4) M prompt components P_m [L, D] with keys K_m and attention vectors A_m [D]. For the frozen
/// query q (class token of a separate pass without prompts) alpha_m = cos(q ⊙ A_m, K_m) and the prompt is
/// sum_m alpha_m P_m, split into L/2 prefix keys and L/2 prefix values. Task t owns components
/// [t M/T, (t+1) M/T): they are Gram-Schmidt initialised orthogonal to the earlier ones when the task begins, and the
/// earlier ones are detached while it trains, so their values never change again. Test time uses all components of the
/// tasks trained so far. Optional orthogonality penalty (official CIFAR-100 weight 0.0). Classifier on the class token.
/// </summary>
[ContinualMethod("coda-prompt", "CODA-Prompt: attention-weighted sum of prompt components, frozen per task (CVPR 2023)")]
public sealed class CodaPrompt : LearnerBase
{
    public sealed record Options
    {
        public int[] Blocks { get; init; } = [0, 1, 2, 3, 4];
        /// <summary>Prompt components M per block (official 100).</summary>
        public int Components { get; init; } = 100;
        /// <summary>Prompt length L (official 8 = 4 prefix keys + 4 prefix values).</summary>
        public int PromptLength { get; init; } = 8;
        /// <summary>Orthogonality penalty weight (official run script for CIFAR-100 and ImageNet-R: 0.0).</summary>
        public double OrthogonalityWeight { get; init; }
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly Model model;
    private readonly int perTask;

    public CodaPrompt(MethodContext context) : this(context, context.Settings.Bind(new Options(), "coda-prompt")) { }
    private CodaPrompt(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private CodaPrompt(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        perTask = options.Components / context.TaskCount;
        if (perTask < 1)
            throw new ContinualMoEException($"coda-prompt: {options.Components} components cannot be shared by {context.TaskCount} tasks");
    }

    public override string Name => "coda-prompt";
    public Parameter Components => model.P;
    public Parameter Keys => model.K;
    public Parameter Attention => model.A;
    public int ComponentsPerTask => perTask;

    public override void BeginTask(TaskContext task)
    {
        var (start, end) = (task.TaskIndex * perTask, (task.TaskIndex + 1) * perTask);
        for (var b = 0; b < model.Blocks.Count; b++)
        {
            GramSchmidt.InitialiseRows(model.P[b], start, end);
            GramSchmidt.InitialiseRows(model.K[b], start, end);
            GramSchmidt.InitialiseRows(model.A[b], start, end);
        }
    }

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = "prompts",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("prompt components", [model.P, model.K, model.A]), new ParameterGroup("head", TrainableParameters(model.Head))],
            // Official: Adam (betas 0.9, 0.999), no weight decay, cosine schedule.
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate, Schedule = ScheduleKind.Cosine },
            Step = batch =>
            {
                var (logits, penalty) = Forward(batch.Images, task.TaskIndex * perTask, (task.TaskIndex + 1) * perTask, training: true);
                return new StepOutput(logits, penalty);
            },
        },
    ];

    /// <summary>Logits using components [0, end); components [0, trainFrom) are detached (frozen).</summary>
    public (Tensor Logits, Tensor? Penalty) Forward(Tensor images, int trainFrom, int end, bool training, EvaluationContext? context = null)
    {
        using var query = FrozenFeatures(images, context);                                         // [B, D]
        var prefixes = new PrefixPrompts(Backbone.Config.Heads);
        Tensor? penalty = null;
        for (var b = 0; b < model.Blocks.Count; b++)
        {
            var p = Live(model.P[b], trainFrom, end);                                      // [f, L, D]
            var k = Live(model.K[b], trainFrom, end);                                      // [f, D]
            var a = Live(model.A[b], trainFrom, end);
            var attended = nn.functional.normalize(query.unsqueeze(1) * a.unsqueeze(0), p: 2, dim: 2);   // [B, f, D]
            var alpha = einsum("bkd,kd->bk", attended, nn.functional.normalize(k, p: 2, dim: 1));       // [B, f]
            var prompt = einsum("bk,kld->bld", alpha, p);                                   // [B, L, D]
            prefixes.AddSplit(model.Blocks[b], prompt);
            if (training && options.OrthogonalityWeight > 0)
            {
                var term = Orthogonality(k).Plus(Orthogonality(a)).Plus(Orthogonality(p.reshape(p.shape[0], -1))).mul(Scalars.Of(options.OrthogonalityWeight));
                penalty = penalty is null ? term : penalty.Plus(term);
            }
        }
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = prefixes });
        return (model.Head.forward(output.Cls), penalty);
    }

    /// <summary>Rows [0, end) with rows before <paramref name="trainFrom"/> cut from the graph.</summary>
    private static Tensor Live(Tensor rows, int trainFrom, int end)
    {
        if (trainFrom <= 0) return rows.narrow(0, 0, end);
        return cat([rows.narrow(0, 0, trainFrom).detach(), rows.narrow(0, trainFrom, end - trainFrom)], 0);
    }

    private static Tensor Orthogonality(Tensor t)
    {
        var gram = t.matmul(t.t());
        return (gram - eye(t.shape[0], device: t.device)).pow(Scalars.Integer(2)).mean();
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        var end = Math.Min(options.Components, Math.Max(1, context.TasksTrained) * perTask);
        return new Prediction(Forward(images, end, end, training: false, context).Logits);
    }

    protected override int BackbonePassesPerTestImage => 2;
    protected override long ParametersAddedPerTask => model.Blocks.Count * (long)perTask * (options.PromptLength * Backbone.EmbedDim + 2L * Backbone.EmbedDim);

    private sealed class Model : nn.Module
    {
        public readonly IReadOnlyList<int> Blocks;
        [TorchSharp.Utils.ComponentName(Name = "components")]
        public readonly Parameter P;   // [blocks, M, L, D]
        [TorchSharp.Utils.ComponentName(Name = "keys")]
        public readonly Parameter K;   // [blocks, M, D]
        [TorchSharp.Utils.ComponentName(Name = "attention")]
        public readonly Parameter A;   // [blocks, M, D]
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("CodaPrompt")
        {
            var d = context.Backbone.EmbedDim;
            Blocks = context.PromptBlocks(options.Blocks, "coda-prompt");
            if (options.PromptLength % 2 != 0) throw new ContinualMoEException($"coda-prompt: prompt_length must be even (keys + values), got {options.PromptLength}");
            torch.random.manual_seed(context.Seed);
            // Official: uniform [0, 1) at construction; each task's slice is Gram-Schmidt re-initialised when it begins.
            P = new Parameter(rand(Blocks.Count, options.Components, options.PromptLength, d));
            K = new Parameter(rand(Blocks.Count, options.Components, d));
            A = new Parameter(rand(Blocks.Count, options.Components, d));
            Head = nn.Linear(d, context.ClassCount);
            register_parameter("components", P);
            register_parameter("keys", K);
            register_parameter("attention", A);
            register_module("head", Head);
        }
    }
}
