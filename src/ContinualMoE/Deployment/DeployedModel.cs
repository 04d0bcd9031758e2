using ContinualMoE.Backbones;
using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Deployment;

/// <summary>
/// A model package loaded for use: the frozen backbone, the learner in its saved state, and the data settings. It
/// predicts, learns its next task (<see cref="Learn"/>, through <see cref="ContinualTrainer.TrainTask"/> exactly as a run
/// trains a task) and evaluates. Not thread-safe: <see cref="IContinualLearner.Predict"/> mutates learner state, so a
/// service runs one <see cref="DeployedModel"/> behind one inference queue and learns on a second copy.
/// </summary>
public sealed class DeployedModel : IDisposable
{
    public PackageManifest Manifest { get; private set; }
    public VisionTransformer Backbone { get; }
    public IContinualLearner Learner { get; }
    public DataSource Data { get; }
    public Device Device { get; }
    private IContinualScenario? runScenario;

    private DeployedModel(PackageManifest manifest, VisionTransformer backbone, IContinualLearner learner, Device device)
    {
        Manifest = manifest; Backbone = backbone; Learner = learner; Device = device;
        Data = Experiment.DataSourceFor(manifest.Config, backbone, device);
    }

    public int TasksLearned => Manifest.Tasks.Count;

    /// <summary>A new model that has learned nothing yet (version 0, not saved): <paramref name="config"/>'s method,
    /// backbone and seed, heads sized by its class_capacity and task_capacity.</summary>
    public static DeployedModel Create(RunConfig config, string? weightsPath)
    {
        if (config.ClassCapacity is not int classes || config.TaskCapacity is not int tasks)
            throw new ContinualMoEException("a new model package needs class_capacity and task_capacity (e.g. --set class_capacity=100 --set task_capacity=10): heads and expert pools are sized by them");
        MethodRegistry.EnsureKnown(config.Method);
        config = PrecisionPolicy.Resolve(config);   // the manifest records what auto became
        var (backbone, device) = LoadBackbone(config, weightsPath);
        var learner = MethodRegistry.Create(config.Method, Experiment.MethodContextFor(config, backbone, classes, device));
        var manifest = new PackageManifest
        {
            Version = 0, Created = DateTimeOffset.UtcNow,
            Backbone = new BackboneReference(config.Backbone, FullPath(weightsPath), BackboneFingerprint.Sha256(backbone)),
            Config = config with { BackboneWeights = FullPath(weightsPath) },
            Capacity = new PackageCapacity(classes, tasks), ClassNames = [], Tasks = [],
            AccuracyMatrix = new AccuracyMatrix(tasks).ToCsv(),
        };
        return new DeployedModel(manifest, backbone, learner, device);
    }

    /// <summary>A package (version 1, unsaved) of a finished (or partly finished) run: its learner after
    /// <paramref name="finishedTasks"/> tasks, its class names and accuracy matrices.</summary>
    public static PackageManifest ExportManifest(Experiment experiment, string? weightsPath, int finishedTasks, AccuracyMatrix accuracy,
        AccuracyMatrix? taskIdentity, string runFolder)
    {
        var scenario = experiment.Scenario;
        var names = scenario is TaskListScenario list ? list.ClassNames.ToList()
            : Enumerable.Range(0, scenario.ClassCount).Select(scenario.OriginalClassName).ToList();
        var taskCapacity = experiment.Config.TaskCapacity ?? experiment.Config.Tasks;
        var now = DateTimeOffset.UtcNow;
        var tasks = scenario.Tasks.Take(finishedTasks)
            .Select(t => new LearnedTask(t.Index, t.Classes.ToList(), new TaskSource(TaskSource.Run, null, t.Index), now, t.Train.Count, t.Test.Count))
            .ToList();
        return new PackageManifest
        {
            Version = 1, Created = now,
            Backbone = new BackboneReference(experiment.Config.Backbone, FullPath(weightsPath), BackboneFingerprint.Sha256(experiment.Backbone)),
            Config = experiment.Config with { BackboneWeights = FullPath(weightsPath), ClassCapacity = scenario.ClassCount, TaskCapacity = taskCapacity },
            Capacity = new PackageCapacity(scenario.ClassCount, taskCapacity),
            ClassNames = names, Tasks = tasks,
            AccuracyMatrix = Resized(accuracy, taskCapacity).ToCsv(), TaskIdentityMatrix = taskIdentity is null ? null : Resized(taskIdentity, taskCapacity).ToCsv(),
            History = [new VersionRecord(1, now, finishedTasks, AverageAfter(accuracy, finishedTasks - 1), $"exported from run {Path.GetFullPath(runFolder)}")],
            Cost = experiment.Learner.Cost(finishedTasks),
        };
    }

    /// <summary>The recorded cells of <paramref name="matrix"/> in a matrix of <paramref name="taskCount"/> tasks (a run's
    /// matrix covers its tasks; a package's covers its task capacity).</summary>
    private static AccuracyMatrix Resized(AccuracyMatrix matrix, int taskCount)
    {
        var resized = new AccuracyMatrix(taskCount);
        for (var t = 0; t < Math.Min(taskCount, matrix.TaskCount); t++)
            for (var i = 0; i <= t; i++)
            {
                if (!matrix.IsRecorded(i, t)) continue;
                if (matrix.Correct(i, t) is double correct && matrix.Total(i, t) is long total) resized.Record(i, t, correct, total);
                else resized.Record(i, t, matrix[i, t]);
            }
        return resized;
    }

    /// <summary>Loads the latest (or the given) version. Refuses a backbone whose weights hash differs from the package's.</summary>
    public static DeployedModel Load(string packageFolder, int? version = null)
    {
        var manifest = ModelPackage.ReadManifest(packageFolder, version);
        var weights = manifest.Backbone.WeightsPath;
        if (weights is not null && !File.Exists(weights) && !Directory.Exists(weights))
            throw ContinualMoEException.ForFile(weights, $"backbone weights of model package {packageFolder} not found");
        var (backbone, device) = LoadBackbone(manifest.Config with { Backbone = manifest.Backbone.Spec }, weights);
        var hash = BackboneFingerprint.Sha256(backbone);
        if (hash != manifest.Backbone.Sha256)
        {
            backbone.Dispose();
            throw ContinualMoEException.ForFile(weights ?? manifest.Backbone.Spec,
                $"backbone sha256 {hash[..12]}.. differs from model package {packageFolder}'s {manifest.Backbone.Sha256[..Math.Min(12, manifest.Backbone.Sha256.Length)]}..: not the weights the model was trained on");
        }
        var learner = MethodRegistry.Create(manifest.Method, Experiment.MethodContextFor(manifest.Config, backbone, manifest.Capacity.Classes, device));
        var state = ModelPackage.ReadState(packageFolder, manifest.Version, manifest.StateSha256);
        try { learner.LoadState(state); }
        catch (ContinualMoEException e)
        {
            learner.Dispose(); backbone.Dispose();
            throw ContinualMoEException.ForFile(Path.Combine(ModelPackage.VersionPath(packageFolder, manifest.Version), ModelPackage.StateFileName), e.Message, e);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
        return new DeployedModel(manifest, backbone, learner, device);
    }

    private static (VisionTransformer, Device) LoadBackbone(RunConfig config, string? weights)
    {
        var device = ComputeDevice.Parse(config.Device);
        var (backbone, _) = BackboneFactory.Create(config.Backbone, weights, config.Seed);
        backbone.to(device);
        backbone.UseComputeType(ComputePrecision.Parse(PrecisionPolicy.Resolve(config).Precision, device));
        backbone.eval();
        return (backbone, device);
    }

    private static string? FullPath(string? path) => path is null ? null : Path.GetFullPath(path);

    /// <summary>Writes the current state as the package's next version (atomically; see <see cref="ModelPackage"/>).</summary>
    public string Save(string packageFolder) => ModelPackage.WriteVersion(packageFolder, Manifest, Learner.State());

    /// <summary>Writes the current state as the version <paramref name="writer"/> stages (it holds the package's write lock).</summary>
    public string Save(PackageWriter writer) => writer.Commit(Manifest, Learner.State());

    /// <summary>Labels the model has learned (the union of its tasks' classes), over the class capacity.</summary>
    public bool[] SeenClassMask()
    {
        var mask = new bool[Manifest.Capacity.Classes];
        foreach (var task in Manifest.Tasks) foreach (var c in task.Classes) mask[c] = true;
        return mask;
    }

    // ---- prediction ----

    /// <summary>Top-<paramref name="topK"/> classes with probabilities (softmax over the learned classes) for each image,
    /// batched through the data loader; <paramref name="batchDone"/> gets the number of images done so far.</summary>
    public IReadOnlyList<ImagePrediction> Predict(UnlabelledImages images, int topK = 5, Action<int>? batchDone = null, CancellationToken cancellation = default)
    {
        var (seen, k, context) = PredictionSetup(topK);
        var results = new List<ImagePrediction>(images.Count);
        using var noGrad = torch.no_grad();
        foreach (var batch in Data.Loader(images, augment: false, shuffle: false).Epoch(0))
        {
            cancellation.ThrowIfCancellationRequested();
            using (batch) PredictBatch(batch.Images, s => images.SourceOf(batch.Indices[s]), seen, k, context, results);
            batchDone?.Invoke(results.Count);
        }
        return results;
    }

    /// <summary>One image as the model takes it: the evaluation pipeline of <see cref="Predict(UnlabelledImages, int, Action{int}?, CancellationToken)"/>'s
    /// loader. Thread-safe (it touches no tensor), so a caller that batches images itself (the service) prepares them on
    /// its own threads while the model computes; the buffer is pooled (<see cref="ImageBuffer.Return"/> it when done).</summary>
    public ImageBuffer PrepareImage(RawImage image) => (evaluationPipeline ??= Data.Pipeline(augment: false)).Apply(image, 0, 0);

    private ImagePipeline? evaluationPipeline;

    /// <summary>As <see cref="Predict(UnlabelledImages, int, Action{int}?, CancellationToken)"/> for images already
    /// prepared by <see cref="PrepareImage"/>, as one batch (the caller chooses its size; the buffers are not returned).</summary>
    public IReadOnlyList<ImagePrediction> Predict(IReadOnlyList<ImageBuffer> prepared, IReadOnlyList<string> sources, int topK = 5)
    {
        if (prepared.Count != sources.Count) throw new ArgumentException("one source per image", nameof(sources));
        var (seen, k, context) = PredictionSetup(topK);
        var results = new List<ImagePrediction>(prepared.Count);
        if (prepared.Count == 0) return results;
        using var noGrad = torch.no_grad();
        using var images = DataLoader.StackImages(prepared, "images", i => sources[i]);
        using var onDevice = Device.type == DeviceType.CPU ? null : images.to(Device);
        PredictBatch(onDevice ?? images, s => sources[s], seen, k, context, results);
        return results;
    }

    private (bool[] Seen, int K, EvaluationContext Context) PredictionSetup(int topK)
    {
        if (Manifest.Tasks.Count == 0) throw new ContinualMoEException("the model has learned no task yet: teach it one with continual-moe learn");
        var seen = SeenClassMask();
        var k = Math.Clamp(topK, 1, seen.Count(s => s));
        return (seen, k, new EvaluationContext(Manifest.Tasks.Count, seen, null, null) { ReportRouting = true });
    }

    private void PredictBatch(Tensor images, Func<int, string> sourceOf, bool[] seen, int k, EvaluationContext context, List<ImagePrediction> results)
    {
        using var scope = NewDisposeScope();
        using var prediction = Learner.Predict(images, context);
        var probabilities = Losses.MaskLogits(prediction.Logits, seen).softmax(-1);
        var (values, indices) = probabilities.topk(k, dim: -1);
        var p = values.cpu().to(ScalarType.Float32).data<float>().ToArray();
        var c = indices.cpu().data<long>().ToArray();
        var tasks = prediction.PredictedTask?.cpu().to(ScalarType.Int64).data<long>().ToArray();
        var routing = (prediction.Routing ?? []).Select(r => (r.Site, Experts: r.Experts.cpu().to(ScalarType.Int64).data<long>().ToArray(),
            Weights: r.Weights.cpu().to(ScalarType.Float64).data<double>().ToArray(), K: (int)r.Experts.shape[1])).ToList();
        var count = (int)images.shape[0];
        for (var s = 0; s < count; s++)
        {
            var top = Enumerable.Range(0, k).Select(j => new ClassProbability((int)c[s * k + j], ClassName((int)c[s * k + j]), p[s * k + j])).ToList();
            var experts = routing.Count == 0 ? null : routing.Select(r => new ExpertRoute(r.Site,
                r.Experts.Skip(s * r.K).Take(r.K).Select(e => (int)e).ToList(), r.Weights.Skip(s * r.K).Take(r.K).ToList())).ToList();
            results.Add(new ImagePrediction(sourceOf(s), top, tasks is null ? null : (int)tasks[s], experts));
        }
    }

    public string ClassName(int label) => label < Manifest.ClassNames.Count ? Manifest.ClassNames[label] : $"(free slot {label})";

    // ---- learning ----

    /// <summary>
    /// Learns the labelled data at <paramref name="source"/> as the next task: class subfolders whose names the model
    /// knows keep their labels (new samples of known classes), new names take the next free labels. Trains through
    /// <see cref="ContinualTrainer.TrainTask"/> with the package's seed (so learning tasks one by one equals a run over
    /// them), then evaluates on the held-out data of every task so far. The manifest becomes the next version's; call
    /// <see cref="Save"/> to write it.
    /// </summary>
    public ContinualTrainer.EvaluationResult Learn(TaskSource source, ITrainingObserver? observer = null, CancellationToken cancellation = default)
    {
        var index = Manifest.Tasks.Count;
        if (index >= Manifest.Capacity.Tasks)
            throw new ContinualMoEException($"the model has learned {index} tasks, its declared task capacity: make a new package with a larger task_capacity");
        var names = Manifest.ClassNames.ToList();
        var newTask = LoadTask(source, index, names);
        if (names.Count > Manifest.Capacity.Classes)
            throw ContinualMoEException.ForFile(source.ToString(),
                $"would bring the model to {names.Count} classes, over its declared class capacity {Manifest.Capacity.Classes} ({Manifest.ClassNames.Count} known)");
        var tasks = Manifest.Tasks.Select(t => LoadTask(t.Source, t.Index, names)).Append(newTask).ToList();
        var scenario = new TaskListScenario(tasks, names, Manifest.Capacity.Classes, Manifest.Capacity.Tasks);
        var trainer = new ContinualTrainer(scenario, Data, Manifest.Config.Seed, observer);
        observer?.TaskStarted(index, Manifest.Capacity.Tasks);
        var trainSeconds = trainer.TrainTask(Learner, index, cancellation);
        var evaluation = trainer.Evaluate(Learner, index);
        observer?.TaskEvaluated(new TaskEvaluation(index, evaluation.Accuracy, evaluation.Counts, evaluation.TaskIdentityAccuracy, evaluation.ImagesPerSecond, trainSeconds));

        var accuracy = AccuracyMatrix.FromCsv(Manifest.AccuracyMatrix);
        var identity = Manifest.TaskIdentityMatrix is { } csv ? AccuracyMatrix.FromCsv(csv) : new AccuracyMatrix(Manifest.Capacity.Tasks);
        for (var i = 0; i <= index; i++)
        {
            accuracy.Record(i, index, evaluation.Correct[i], evaluation.Counts[i]);
            if (evaluation.TaskIdentityCorrect is { } hits) identity.Record(i, index, hits[i], evaluation.Counts[i]);
        }
        var now = DateTimeOffset.UtcNow;
        var version = Manifest.Version + 1;
        Manifest = Manifest with
        {
            Version = version, Created = now, ClassNames = names,
            Tasks = [.. Manifest.Tasks, new LearnedTask(index, newTask.Classes.ToList(), source, now, newTask.Train.Count, newTask.Test.Count)],
            AccuracyMatrix = accuracy.ToCsv(),
            TaskIdentityMatrix = evaluation.TaskIdentityCorrect is null ? Manifest.TaskIdentityMatrix : identity.ToCsv(),
            History = [.. Manifest.History, new VersionRecord(version, now, index + 1, AverageAfter(accuracy, index), $"learned task {index + 1} from {source}")],
            Cost = Learner.Cost(index + 1),
        };
        return evaluation;
    }

    /// <summary>Mean accuracy over the tasks seen after task <paramref name="t"/> (null before any task).</summary>
    private static double? AverageAfter(AccuracyMatrix accuracy, int t) =>
        t < 0 ? null : Enumerable.Range(0, t + 1).Select(i => accuracy[i, t]).Average();

    /// <summary>Task <paramref name="index"/>'s training and held-out data in the package's label space; new class
    /// names are appended to <paramref name="names"/>.</summary>
    public TaskData LoadTask(TaskSource source, int index, List<string> names)
    {
        if (source.Kind == TaskSource.Run)
        {
            runScenario ??= Experiment.BuildScenario(Manifest.Config);
            var task = runScenario.Tasks[source.RunTask ?? throw new ContinualMoEException("a run task source needs run_task")];
            return task with { Index = index };
        }
        var (splits, selected, where) = LoadSplits(source);
        // Only the classes the source selects enter the vocabulary (a dataset spec may take a subset).
        var labelOf = Enumerable.Repeat(-1, splits.Train.ClassNames.Count).ToArray();
        foreach (var label in selected)
        {
            var name = splits.Train.ClassNames[label];
            var known = names.IndexOf(name);
            if (known < 0) { names.Add(name); known = names.Count - 1; }
            labelOf[label] = known;
        }
        var train = new VocabularyDataset(splits.Train, labelOf, names);
        var test = new VocabularyDataset(splits.Test, labelOf, names);
        if (train.Count == 0) throw ContinualMoEException.ForFile(where, "has no training images");
        var classes = train.Labels().Distinct().Order().ToList();
        return new TaskData(index, classes, train, test) { TestClasses = test.Labels().Distinct().Order().ToList() };
    }

    /// <summary>A folder's or dataset spec's training and held-out data, the labels it selects, and where it is (for errors).
    /// Folders without train/ and test/ are split with the package's seed, whether named plainly or as image-folder:.</summary>
    private (DatasetSplits Splits, IReadOnlyList<int> Labels, string Where) LoadSplits(TaskSource source)
    {
        if (source.Kind == TaskSource.Folder && source.Path is { } folder)
        {
            var splits = ImageFolderLoader.Load(folder, Path.GetFileName(Path.TrimEndingDirectorySeparator(folder)), splitSeed: Manifest.Config.Seed);
            return (splits, Enumerable.Range(0, splits.Train.ClassNames.Count).ToList(), folder);
        }
        if (source.Kind == TaskSource.DatasetKind && source.Dataset is { } text)
        {
            var spec = DatasetSpec.Parse(text);
            var all = spec.Name == "image-folder"
                ? ImageFolderLoader.Load(spec.Root!, Path.GetFileName(Path.TrimEndingDirectorySeparator(spec.Root!)), splitSeed: Manifest.Config.Seed)
                : Experiment.LoadData(Manifest.Config with { Dataset = spec.Name, DataRoot = spec.Root });
            var labels = spec.SelectedLabels(all.Train.ClassNames);
            return (spec.Select(all, labels), labels, text);
        }
        throw new ContinualMoEException($"unknown task source kind '{source.Kind}' (folder, dataset or run)");
    }

    // ---- evaluation ----

    /// <summary>Accuracy per task and per class and the confusion matrix on <paramref name="source"/>'s held-out images
    /// (all its images with <paramref name="allImages"/>), or on the held-out data of every learned task when null.</summary>
    public LabelledEvaluation Evaluate(TaskSource? source = null, bool allImages = false, CancellationToken cancellation = default)
    {
        if (Manifest.Tasks.Count == 0) throw new ContinualMoEException("the model has learned no task yet");
        var names = Manifest.ClassNames.ToList();
        ILabelledDataset data;
        if (source is null)
            data = new ConcatDataset(Manifest.Tasks.Select(t => LoadTask(t.Source, t.Index, names).Test).ToList());
        else
        {
            var task = LoadTask(source, Manifest.Tasks.Count, names);
            data = allImages ? new ConcatDataset([task.Train, task.Test]) : task.Test;
        }
        var seen = SeenClassMask();
        var classCount = names.Count;
        var confusion = new long[classCount, classCount];
        var context = new EvaluationContext(Manifest.Tasks.Count, seen, null, null);
        using var noGrad = torch.no_grad();
        foreach (var batch in Data.Loader(data, augment: false, shuffle: false).Epoch(0))
        {
            cancellation.ThrowIfCancellationRequested();
            using (batch)
            using (var scope = NewDisposeScope())
            using (var prediction = Learner.Predict(batch.Images, context))
            {
                var predicted = Losses.MaskLogits(prediction.Logits, seen).argmax(-1).cpu().data<long>().ToArray();
                var labels = batch.Labels.cpu().data<long>().ToArray();
                for (var s = 0; s < labels.Length; s++) confusion[labels[s], predicted[s]]++;
            }
        }
        // A class counts toward the first task that learned it; classes the model never learned toward none.
        var taskOfClass = Enumerable.Repeat(-1, classCount).ToArray();
        foreach (var t in Manifest.Tasks) foreach (var c in t.Classes) if (taskOfClass[c] < 0) taskOfClass[c] = t.Index;
        var perClass = Enumerable.Range(0, classCount).Select(c =>
        {
            long total = 0; for (var p = 0; p < classCount; p++) total += confusion[c, p];
            return new ClassAccuracy(c, names[c], total == 0 ? null : 100.0 * confusion[c, c] / total, total, taskOfClass[c] < 0 ? null : taskOfClass[c]);
        }).ToList();
        var perTask = Manifest.Tasks.Select(t =>
        {
            var rows = perClass.Where(c => c.Task == t.Index && c.Images > 0).ToList();
            long images = rows.Sum(r => r.Images), correct = rows.Sum(r => confusion[r.Label, r.Label]);
            return new TaskAccuracy(t.Index, images == 0 ? null : 100.0 * correct / images, images);
        }).ToList();
        long all = 0, hits = 0;
        for (var c = 0; c < classCount; c++) { hits += confusion[c, c]; for (var p = 0; p < classCount; p++) all += confusion[c, p]; }
        return new LabelledEvaluation(all == 0 ? 0 : 100.0 * hits / all, all, perTask, perClass, names, confusion);
    }

    public void Dispose()
    {
        Learner.Dispose();
        Backbone.Dispose();
    }
}

public sealed record ClassProbability(int Label, string Name, double Probability);

/// <summary>One image's top classes; <see cref="PredictedTask"/> for methods that infer the task (HiDe-Prompt, NoRGa),
/// <see cref="Routing"/> for methods that route to experts (SMoPE, SAMoE, SETA).</summary>
public sealed record ImagePrediction(string Source, IReadOnlyList<ClassProbability> Top, int? PredictedTask, IReadOnlyList<ExpertRoute>? Routing = null);

/// <summary>The experts one routing site chose for an image, most weighted first, and their weights
/// (<see cref="ExpertChoice"/>).</summary>
public sealed record ExpertRoute(string Site, IReadOnlyList<int> Experts, IReadOnlyList<double> Weights)
{
    public override string ToString() =>
        $"{Site}: {string.Join(" ", Experts.Select((e, i) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{e} ({Weights[i]:0.##})")))}";
}

public sealed record ClassAccuracy(int Label, string Name, double? Accuracy, long Images, int? Task);

public sealed record TaskAccuracy(int Task, double? Accuracy, long Images);

/// <summary>Accuracy over all images, per learned task and per class, and the confusion matrix [true, predicted].</summary>
public sealed record LabelledEvaluation(double Accuracy, long Images, IReadOnlyList<TaskAccuracy> Tasks, IReadOnlyList<ClassAccuracy> Classes,
    IReadOnlyList<string> ClassNames, long[,] Confusion);
