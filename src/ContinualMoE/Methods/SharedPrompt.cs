using ContinualMoE.Backbones;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// The plain shared-prompt baseline of SMoPE's argument: one prefix prompt with SMoPE's placement and size (blocks 0-5,
/// 25 prefix key/value pairs per head, directly in each head's projected key/value space, uniform [0, 1) like SMoPE's
/// experts), trained continually by every task with no experts, no selection and no regularisation. Classifier on the
/// class token; SMoPE's optimiser (AdamW without weight decay, cosine schedule, prompt rate x5). One pass per test image.
/// </summary>
[ContinualMethod("shared-prompt", "one shared prefix prompt (SMoPE's size and placement) trained continually, no experts")]
public sealed class SharedPrompt : LearnerBase, IAttentionPrefixProvider
{
    public sealed record Options
    {
        public int[] Blocks { get; init; } = [0, 1, 2, 3, 4, 5];
        /// <summary>Prefix key/value pairs per block and head (SMoPE: 25 experts).</summary>
        public int Length { get; init; } = 25;
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
        public double PromptRateMultiplier { get; init; } = 5.0;
    }

    private readonly Options options;
    private readonly Model model;

    public SharedPrompt(MethodContext context) : this(context, context.Settings.Bind(new Options(), "shared-prompt")) { }
    private SharedPrompt(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private SharedPrompt(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
    }

    public override string Name => "shared-prompt";
    public Parameter Keys => model.Keys;
    public Parameter Values => model.Values;

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = "prompt",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("prompt", [model.Keys, model.Values], options.PromptRateMultiplier), new ParameterGroup("head", TrainableParameters(model.Head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.AdamW, LearningRate = options.LearningRate ?? Context.Training.LearningRate, WeightDecay = 0, Schedule = ScheduleKind.Cosine },
            Step = batch => new StepOutput(Logits(batch.Images)),
        },
    ];

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        var p = model.IndexOf(blockIndex);
        return p < 0 ? null : AttentionPrefix.FromKeysAndValues(model.Keys[p].unsqueeze(0), model.Values[p].unsqueeze(0));
    }

    private Tensor Logits(Tensor images)
    {
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = this });
        return model.Head.forward(output.Cls);
    }

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(Logits(images));

    private sealed class Model : nn.Module
    {
        private readonly Dictionary<int, int> index;
        [TorchSharp.Utils.ComponentName(Name = "keys")]
        public readonly Parameter Keys;     // [blocks, H, L, d]
        [TorchSharp.Utils.ComponentName(Name = "values")]
        public readonly Parameter Values;
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("SharedPrompt")
        {
            var config = context.Backbone.Config;
            var blocks = context.PromptBlocks(options.Blocks, "shared-prompt");
            index = blocks.Select((b, i) => (b, i)).ToDictionary(x => x.b, x => x.i);
            torch.random.manual_seed(context.Seed);
            Keys = new Parameter(rand(blocks.Count, config.Heads, options.Length, config.HeadDim));
            Values = new Parameter(rand(blocks.Count, config.Heads, options.Length, config.HeadDim));
            Head = nn.Linear(config.EmbedDim, context.ClassCount);
            register_parameter("keys", Keys);
            register_parameter("values", Values);
            register_module("head", Head);
        }

        public int IndexOf(int block) => index.TryGetValue(block, out var p) ? p : -1;
    }
}
