using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// SimpleCIL (Zhou et al., 2023, "Revisiting class-incremental learning with pre-trained models"): no training; after
/// each task, every new class's prototype is the mean frozen class-token feature of its un-augmented training images,
/// and prediction is the cosine similarity to the prototypes. A class seen again (overlapping tasks) keeps the mean over
/// all its images so far.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default -0.1, split Fashion-MNIST -0.05.
[ContinualMethod("ncm", "nearest-class-mean (SimpleCIL) cosine classifier on frozen features", Bf16Safe = true)]
public sealed class NearestClassMean : LearnerBase
{
    private readonly PrototypeStore store;

    public NearestClassMean(MethodContext context) : this(context, new PrototypeStore(context.ClassCount, context.Backbone.EmbedDim)) { }

    private NearestClassMean(MethodContext context, PrototypeStore store) : base(context, store) => this.store = store;

    public override string Name => "ncm";

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) => [];

    public override void EndTask(TaskContext task)
    {
        using var noGrad = no_grad();
        var sums = zeros(Context.ClassCount, Backbone.EmbedDim, device: Context.Device);
        var counts = zeros(Context.ClassCount, device: Context.Device);
        foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                var features = FrozenFeatures(batch.Images);
                sums.index_add_(0, batch.Labels, features, Scalars.One);
                counts.index_add_(0, batch.Labels, ones_like(batch.Labels, dtype: float32), Scalars.One);
            }
        }
        foreach (var c in task.TaskClasses)
        {
            if (counts[c].item<float>() == 0) continue;
            var earlier = store.counts[c].item<float>();
            using var earlierScalar = earlier.ToScalar();
            store.prototypes[c].copy_(earlier == 0 ? sums[c] / counts[c] : store.prototypes[c].mul(earlierScalar).Plus(sums[c]) / counts[c].Plus(earlierScalar));
            store.counts[c].PlusInPlace(counts[c]);
            store.known[c].fill_(Scalars.One);
        }
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        using var scope = NewDisposeScope();
        var similarity = ContinualMoE.Prompts.PromptMatching.Cosine(FrozenFeatures(images, context), store.prototypes).masked_fill(store.known.logical_not(), Scalars.NegativeInfinity);
        return new Prediction(similarity.MoveToOuterDisposeScope());
    }

    /// <summary>Class prototypes and which classes have one, as buffers so they are saved in checkpoints.</summary>
    private sealed class PrototypeStore : nn.Module
    {
        public readonly Tensor prototypes;
        public readonly Tensor known;
        public readonly Tensor counts;   // images behind each prototype

        public PrototypeStore(int classes, int dim) : base(nameof(PrototypeStore))
        {
            prototypes = zeros(classes, dim);
            known = zeros(classes, dtype: torch.@bool);
            counts = zeros(classes);
            register_buffer("prototypes", prototypes);
            register_buffer("known", known);
            register_buffer("counts", counts);
        }
    }
}
