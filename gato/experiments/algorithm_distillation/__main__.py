from gato.experiments.algorithm_distillation.experiment import main

if __name__ == "__main__":
    main()
